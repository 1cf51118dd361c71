//! Watches a consumer's assigned partitions for a log that restarted below its position.
//!
//! A broker that lost its store (a local broker restarted on an empty volume) numbers
//! each partition from 0 again. Apache Kafka answers a fetch past a log's end with
//! `OFFSET_OUT_OF_RANGE` and the client resets; nisshi answers with nothing, so the
//! consumer would wait at its old position and then skip every message below it. When
//! an assigned partition's position is past its high watermark, the watch has the
//! consumer loop read it again from the beginning: what is there now is new.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::REQUEST_TIMEOUT;
use super::group::GroupConsumer;
use super::rewind::Found;

/// How often to look.
const EVERY: Duration = Duration::from_secs(5);

/// Watches until `shutdown`, sending the partitions found past their log's end.
pub(super) async fn watch(
    consumer: Arc<GroupConsumer>,
    restarted: mpsc::Sender<Vec<Found>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let probe = Arc::clone(&consumer);
        if let Ok(past_end) = tokio::task::spawn_blocking(move || past_their_end(&probe)).await
            && !past_end.is_empty()
            && restarted.send(past_end).await.is_err()
        {
            return;
        }
    }
}

/// The assigned partitions whose position is past their log's end, with that position.
fn past_their_end(consumer: &GroupConsumer) -> Vec<Found> {
    let Ok(positions) = consumer.position() else { return Vec::new() };
    let mut past_end = Vec::new();
    for element in positions.elements() {
        let Offset::Offset(position) = element.offset() else { continue };
        let Ok((_, high)) = consumer.fetch_watermarks(element.topic(), element.partition(), REQUEST_TIMEOUT) else {
            continue;
        };
        if position > high {
            tracing::warn!(
                topic = element.topic(),
                partition = element.partition(),
                position,
                high,
                "the partition's log ends before our position (the broker lost its store?); reading it from the beginning"
            );
            past_end.push(((element.topic().to_owned(), element.partition()), element.offset()));
        }
    }
    past_end
}
