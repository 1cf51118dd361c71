//! The simulated payment provider's decisions.

use contracts::events::PaymentStatus;
use uuid::Uuid;

/// Namespace of payment ids (UUIDv5 over the order id).
const PAYMENT_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_1587_e13d_4692_9c0e_70d3_a1b2_c3d4);

/// The payment id for an order: the same order always gets the same payment id,
/// so a redelivered `order.created` produces the same `payment.completed`.
pub fn payment_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&PAYMENT_NAMESPACE, order_id.as_bytes())
}

/// Whether the payment goes through. Decided by the payment id, not by chance at
/// handling time, so a retry never turns a decline into a success or back.
pub fn decide(payment_id: Uuid, failure_rate: f64) -> PaymentStatus {
    // The top 53 bits of the id as a uniform number in [0, 1).
    #[allow(clippy::cast_precision_loss)]
    let draw = (payment_id.as_u128() >> 75) as f64 / (1u64 << 53) as f64;
    if draw < failure_rate { PaymentStatus::Failed } else { PaymentStatus::Completed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_order_always_gets_the_same_payment() {
        let order = Uuid::new_v4();
        assert_eq!(payment_id(order), payment_id(order));
        assert_ne!(payment_id(order), payment_id(Uuid::new_v4()));
    }

    #[test]
    fn rates_zero_and_one_are_absolute_and_ten_percent_is_about_ten_percent() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| payment_id(Uuid::new_v4())).collect();
        assert!(ids.iter().all(|id| decide(*id, 0.0) == PaymentStatus::Completed));
        assert!(ids.iter().all(|id| decide(*id, 1.0) == PaymentStatus::Failed));
        let failed = ids.iter().filter(|id| decide(**id, 0.1) == PaymentStatus::Failed).count();
        assert!((800..=1200).contains(&failed), "{failed} of 10000 failed at 10 %");
    }
}
