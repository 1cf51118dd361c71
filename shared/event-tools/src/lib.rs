//! Tools for the people who run the platform, built on [`eventing`] but linked into no
//! service: a live view of the topics (`make events`, [`tail`]) and the dead-letter
//! topics' listing and replay (`platform-dlq`, [`dead_letters`]).

pub mod dead_letters;
pub mod tail;
