//! A validated order request, with every failing field reported at once.

pub use contracts::api::orders::CreateOrderRequest;
use contracts::money::Money;
use platform::http::FieldError;
use uuid::Uuid;

use super::ProductId;

/// The integer a JSON number stands for, if it has no fractional part (`2`, `2.0`).
fn whole_number(number: &serde_json::Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        let value = number.as_f64()?;
        #[allow(clippy::cast_possible_truncation)]
        (value.fract() == 0.0 && value.abs() <= 1e15).then_some(value as i64)
    })
}

/// The line every welcome order has.
pub const WELCOME_ITEM: (&str, u32, i64) = ("product-welcome-kit", 1, 1_000);

const MAX_ITEMS: usize = 100;
const QUANTITY: std::ops::RangeInclusive<u32> = 1..=9999;
const PRICE_CENTS: std::ops::RangeInclusive<i64> = 1..=99_999_999;

/// A validated line.
#[derive(Debug, Clone)]
pub struct NewOrderItem {
    /// Product.
    pub product_id: ProductId,
    /// 1 to 9999.
    pub quantity: u32,
    /// 0.01 to 999999.99.
    pub price: Money,
}

/// A validated order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The ordering user.
    pub user_id: Uuid,
    /// 1 to 100 lines.
    pub items: Vec<NewOrderItem>,
}

impl NewOrder {
    /// The welcome order for a new user.
    pub fn welcome(user_id: Uuid) -> Self {
        let (product, quantity, cents) = WELCOME_ITEM;
        Self {
            user_id,
            items: vec![NewOrderItem {
                product_id: ProductId::parse(product).unwrap_or_else(|_| unreachable!("constant is valid")),
                quantity,
                price: Money::from_cents(cents).unwrap_or_else(|_| unreachable!("constant is valid")),
            }],
        }
    }

    /// Sum of quantity × price. Cannot overflow within the validated bounds
    /// (100 × 9999 × 99 999 999 cents < 2^63).
    pub fn total(&self) -> Money {
        self.items
            .iter()
            .filter_map(|item| item.price.checked_mul(i64::from(item.quantity)))
            .fold(Money::ZERO, |sum, line| sum.checked_add(line).unwrap_or(sum))
    }
}

impl TryFrom<CreateOrderRequest> for NewOrder {
    type Error = Vec<FieldError>;

    fn try_from(request: CreateOrderRequest) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        if request.items.is_empty() || request.items.len() > MAX_ITEMS {
            errors.push(FieldError::new("items", format!("must have 1 to {MAX_ITEMS} items")));
        }
        let mut items = Vec::with_capacity(request.items.len());
        for (i, item) in request.items.into_iter().enumerate() {
            let product_id = ProductId::parse(&item.product_id)
                .map_err(|e| errors.push(FieldError::new(format!("items[{i}].productId"), e)))
                .ok();
            let quantity = whole_number(&item.quantity)
                .and_then(|q| u32::try_from(q).ok())
                .filter(|q| QUANTITY.contains(q))
                .ok_or_else(|| errors.push(FieldError::new(format!("items[{i}].quantity"), "must be 1 to 9999")))
                .ok();
            let price = match Money::parse_decimal(&item.price.to_string()) {
                Ok(price) if PRICE_CENTS.contains(&price.cents()) => Some(price),
                Ok(_) => {
                    errors.push(FieldError::new(format!("items[{i}].price"), "must be 0.01 to 999999.99"));
                    None
                }
                Err(e) => {
                    errors.push(FieldError::new(format!("items[{i}].price"), e));
                    None
                }
            };
            if let (Some(product_id), Some(quantity), Some(price)) = (product_id, quantity, price) {
                items.push(NewOrderItem { product_id, quantity, price });
            }
        }
        if errors.is_empty() { Ok(Self { user_id: request.user_id, items }) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<NewOrder, Vec<FieldError>> {
        NewOrder::try_from(serde_json::from_value::<CreateOrderRequest>(json).unwrap())
    }

    #[test]
    fn totals_are_exact() {
        let order = parse(serde_json::json!({
            "userId": Uuid::nil(),
            "items": [{"productId": "product-123", "quantity": 2, "price": 29.99},
                      {"productId": "product-9", "quantity": 3, "price": 0.1}]
        }))
        .unwrap();
        assert_eq!(order.total().cents(), 2 * 2999 + 3 * 10);
    }

    #[test]
    fn every_failing_field_is_reported() {
        let errors = parse(serde_json::json!({
            "userId": Uuid::nil(),
            "items": [{"productId": "bad", "quantity": 0, "price": 1.234},
                      {"productId": "product-1", "quantity": 10000, "price": 0}]
        }))
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["items[0].productId", "items[0].quantity", "items[0].price", "items[1].quantity", "items[1].price"]
        );
    }

    #[test]
    fn an_empty_order_is_refused() {
        let errors = parse(serde_json::json!({"userId": Uuid::nil(), "items": []})).unwrap_err();
        assert_eq!(errors[0].field, "items");
    }
}
