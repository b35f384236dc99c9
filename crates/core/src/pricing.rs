//! Price updates after each cycle (SPEC §5): a busy market gets dearer, an idle one
//! cheaper, always within the configured bounds.
//!
//! Factors are configured as floats but applied as exact integer ratios (parts per
//! billion), so `100 µcr × 1.10` is exactly 110 µcr rather than whatever rounding
//! `110.00000000000001` up would give; prices themselves never pass through a float.

use crate::bundle::{Price, Prices, Resource};

/// When and by how much prices move (config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PricePolicy {
    /// Utilisation at or above which the price rises.
    pub high_utilisation: f64,
    /// Utilisation at or below which the price falls.
    pub low_utilisation: f64,
    /// Multiplier applied on a rise, ≥ 1.
    pub raise_factor: f64,
    /// Multiplier applied on a fall, in `(0, 1]`.
    pub lower_factor: f64,
}

impl Default for PricePolicy {
    /// The original's policy: ≥ 0.8 → ×1.10, ≤ 0.2 → ×0.95.
    fn default() -> Self {
        PricePolicy {
            high_utilisation: 0.8,
            low_utilisation: 0.2,
            raise_factor: 1.10,
            lower_factor: 0.95,
        }
    }
}

impl PricePolicy {
    /// Checks that the policy makes sense, naming the first field that does not:
    /// all finite, `0 ≤ low < high`, `raise ≥ 1`, `0 < lower ≤ 1`.
    ///
    /// `high` may exceed 1: a market whose price should only rise when oversubscribed
    /// (utilisation can pass 1 when running executions hold more than a reduced supply).
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("high_utilisation", self.high_utilisation),
            ("low_utilisation", self.low_utilisation),
            ("raise_factor", self.raise_factor),
            ("lower_factor", self.lower_factor),
        ];
        if let Some((name, _)) = fields.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!("{name} must be a finite number"));
        }
        if self.low_utilisation < 0.0 {
            return Err("low_utilisation must not be negative".to_string());
        }
        if self.high_utilisation <= self.low_utilisation {
            return Err("high_utilisation must be greater than low_utilisation".to_string());
        }
        if self.raise_factor < 1.0 {
            return Err("raise_factor must be at least 1".to_string());
        }
        if !(self.lower_factor > 0.0 && self.lower_factor <= 1.0) {
            return Err("lower_factor must be greater than 0 and at most 1".to_string());
        }
        Ok(())
    }
}

/// The range a resource's price is kept in (config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceBounds {
    pub min: Price,
    pub max: Price,
}

impl PriceBounds {
    /// `price` brought into `[min, max]`. Unlike `Ord::clamp` this never panics: if
    /// misconfigured with `min > max`, `max` wins, so a price can never run away.
    pub fn clamp(&self, price: Price) -> Price {
        price.max(self.min).min(self.max)
    }
}

/// Parts per billion: the precision at which configured factors are applied.
const PPB: i128 = 1_000_000_000;

/// The price for the next cycle given this cycle's utilisation of its market.
///
/// At or above `high_utilisation` the price is multiplied by `raise_factor`, rounded
/// up and raised by at least 1 µcr, so that a price of 0 or a few µcr can still
/// climb; at or below `low_utilisation` it is multiplied by `lower_factor`, rounded
/// down and lowered by at least 1 µcr; otherwise, and for a non-finite utilisation
/// (no measurement is no reason to move), it stays. The result is always clamped to
/// `bounds` and never overflows.
pub fn next_price(
    current: Price,
    utilisation: f64,
    policy: &PricePolicy,
    bounds: PriceBounds,
) -> Price {
    let c = current.0;
    let next = if !utilisation.is_finite() {
        c
    } else if utilisation >= policy.high_utilisation {
        scale(c, policy.raise_factor, Rounding::Up).max(c.saturating_add(1))
    } else if utilisation <= policy.low_utilisation {
        scale(c, policy.lower_factor, Rounding::Down).min(c.saturating_sub(1))
    } else {
        c
    };
    bounds.clamp(Price(next))
}

/// [`next_price`] for every market, each with its own utilisation and bounds.
pub fn next_prices(
    current: &Prices,
    utilisation: &[f64; 4],
    policy: &PricePolicy,
    bounds: &[PriceBounds; 4],
) -> Prices {
    let mut next = *current;
    for r in Resource::ALL {
        let i = r.index();
        next.0[i] = next_price(current.0[i], utilisation[i], policy, bounds[i]);
    }
    next
}

#[derive(Clone, Copy)]
enum Rounding {
    Up,
    Down,
}

/// `value × factor` in exact integer arithmetic, saturating at the bounds of `i64`.
fn scale(value: i64, factor: f64, rounding: Rounding) -> i64 {
    // `as` saturates (and maps NaN to 0), so even an unvalidated factor cannot panic;
    // next_price's ±1 µcr floor still keeps the direction right.
    let ratio = (factor * PPB as f64).round() as i128;
    let product = i128::from(value).saturating_mul(ratio);
    // div_euclid by a positive divisor is floor division, also for negative values.
    let floor = product.div_euclid(PPB);
    let rounded = match rounding {
        Rounding::Down => floor,
        Rounding::Up if product.rem_euclid(PPB) != 0 => floor + 1,
        Rounding::Up => floor,
    };
    i64::try_from(rounded).unwrap_or(if rounded > 0 { i64::MAX } else { i64::MIN })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WIDE: PriceBounds = PriceBounds {
        min: Price(0),
        max: Price(i64::MAX),
    };

    fn next(current: i64, utilisation: f64) -> i64 {
        next_price(Price(current), utilisation, &PricePolicy::default(), WIDE).0
    }

    #[test]
    fn busy_markets_rise_by_the_exact_factor_rounded_up() {
        assert_eq!(next(1_000_000, 0.9), 1_100_000);
        // 100 × 1.1 is 110 exactly; float arithmetic would give 110.00000000000001
        // and round it up to 111.
        assert_eq!(next(100, 0.9), 110);
        assert_eq!(next(15, 0.9), 17); // 16.5 rounds up
        assert_eq!(next(100, 0.8), 110, "the threshold itself raises");
        assert_eq!(next(100, 1.5), 110, "oversubscribed raises");
    }

    #[test]
    fn tiny_prices_can_still_move() {
        assert_eq!(next(0, 1.0), 1);
        assert_eq!(next(1, 1.0), 2);
        let flat = PricePolicy {
            raise_factor: 1.0,
            lower_factor: 1.0,
            ..PricePolicy::default()
        };
        assert_eq!(next_price(Price(500), 1.0, &flat, WIDE), Price(501));
        assert_eq!(next_price(Price(500), 0.0, &flat, WIDE), Price(499));
    }

    #[test]
    fn idle_markets_fall_by_the_exact_factor_rounded_down() {
        assert_eq!(next(1_000_000, 0.1), 950_000);
        assert_eq!(next(15, 0.1), 14); // 14.25
        assert_eq!(next(19, 0.0), 18); // 18.05
        assert_eq!(next(1, 0.1), 0);
        assert_eq!(next(100, 0.2), 95, "the threshold itself lowers");
    }

    #[test]
    fn moderate_or_unknown_utilisation_leaves_the_price() {
        for u in [0.21, 0.5, 0.79, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(next(1_000, u), 1_000, "utilisation {u}");
        }
    }

    #[test]
    fn prices_stay_within_bounds() {
        let b = PriceBounds {
            min: Price(100),
            max: Price(1_000),
        };
        let p = PricePolicy::default();
        assert_eq!(next_price(Price(1_000), 1.0, &p, b), Price(1_000));
        assert_eq!(next_price(Price(950), 1.0, &p, b), Price(1_000));
        assert_eq!(next_price(Price(100), 0.0, &p, b), Price(100));
        assert_eq!(next_price(Price(0), 0.0, &p, WIDE), Price(0));
        // A price outside its bounds (bounds changed in config) is brought back even
        // when it would not otherwise move.
        assert_eq!(next_price(Price(5_000), 0.5, &p, b), Price(1_000));
        assert_eq!(next_price(Price(5), f64::NAN, &p, b), Price(100));
        // Inverted bounds do not panic; max wins.
        let inverted = PriceBounds {
            min: Price(10),
            max: Price(5),
        };
        assert_eq!(next_price(Price(7), 0.5, &p, inverted), Price(5));
    }

    #[test]
    fn huge_prices_and_factors_saturate_instead_of_overflowing() {
        assert_eq!(next(i64::MAX, 1.0), i64::MAX);
        assert_eq!(next(i64::MAX - 1, 1.0), i64::MAX);
        let wild = PricePolicy {
            raise_factor: 1e300,
            ..PricePolicy::default()
        };
        assert_eq!(next_price(Price(3), 1.0, &wild, WIDE), Price(i64::MAX));
        let all = PriceBounds {
            min: Price(i64::MIN),
            max: Price(i64::MAX),
        };
        assert_eq!(
            next_price(Price(i64::MIN), 0.0, &PricePolicy::default(), all),
            Price(i64::MIN)
        );
    }

    #[test]
    fn next_prices_moves_each_market_by_its_own_utilisation() {
        let current = Prices([Price(1_000), Price(1_000), Price(1_000), Price(1_000)]);
        let bounds = [WIDE; 4];
        let next = next_prices(
            &current,
            &[0.9, 0.1, 0.5, f64::NAN],
            &PricePolicy::default(),
            &bounds,
        );
        assert_eq!(
            next,
            Prices([Price(1_100), Price(950), Price(1_000), Price(1_000)])
        );
    }

    #[test]
    fn policy_validation_names_the_bad_field() {
        assert_eq!(PricePolicy::default().validate(), Ok(()));
        let d = PricePolicy::default();
        let high_over_one = PricePolicy {
            high_utilisation: 1.5,
            ..d
        };
        assert_eq!(high_over_one.validate(), Ok(()));
        let bad = |p: PricePolicy| p.validate().expect_err("invalid policy");
        assert!(bad(PricePolicy {
            raise_factor: f64::NAN,
            ..d
        })
        .contains("raise_factor"));
        assert!(bad(PricePolicy {
            high_utilisation: f64::INFINITY,
            ..d
        })
        .contains("high_utilisation"));
        assert!(bad(PricePolicy {
            low_utilisation: -0.1,
            ..d
        })
        .contains("low_utilisation"));
        assert!(bad(PricePolicy {
            low_utilisation: 0.8,
            ..d
        })
        .contains("high_utilisation"));
        assert!(bad(PricePolicy {
            raise_factor: 0.99,
            ..d
        })
        .contains("raise_factor"));
        assert!(bad(PricePolicy {
            lower_factor: 0.0,
            ..d
        })
        .contains("lower_factor"));
        assert!(bad(PricePolicy {
            lower_factor: 1.01,
            ..d
        })
        .contains("lower_factor"));
    }

    fn valid_policy() -> impl Strategy<Value = PricePolicy> {
        (0.0..0.5f64, 0.01..0.6f64, 1.0..3.0f64, 0.01..=1.0f64).prop_map(
            |(low, gap, raise, lower)| PricePolicy {
                high_utilisation: low + gap,
                low_utilisation: low,
                raise_factor: raise,
                lower_factor: lower,
            },
        )
    }

    fn utilisation() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => 0.0..1.5f64,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
        ]
    }

    proptest! {
        #[test]
        fn result_is_always_within_bounds(
            current in any::<i64>(),
            a in any::<i64>(),
            b in any::<i64>(),
            u in utilisation(),
            policy in valid_policy(),
        ) {
            let bounds = PriceBounds { min: Price(a.min(b)), max: Price(a.max(b)) };
            let next = next_price(Price(current), u, &policy, bounds);
            prop_assert!(bounds.min <= next && next <= bounds.max);
        }

        #[test]
        fn prices_move_only_in_the_direction_utilisation_says(
            current in 0i64..1_000_000_000_000,
            min in 0i64..1_000,
            u in utilisation(),
            policy in valid_policy(),
        ) {
            let bounds = PriceBounds { min: Price(min), max: Price(1_000_000_000_000) };
            let current = bounds.clamp(Price(current));
            let next = next_price(current, u, &policy, bounds);
            if !u.is_finite() || (u < policy.high_utilisation && u > policy.low_utilisation) {
                prop_assert_eq!(next, current);
            } else if u >= policy.high_utilisation {
                prop_assert!(next > current || current == bounds.max);
                // Never more than the factor allows, give or take the 1 µcr floor and
                // the factor's parts-per-billion precision.
                let slack = current.0 as f64 * 1e-9 + 1.0;
                let cap = (current.0 as f64 * policy.raise_factor).ceil() + slack;
                prop_assert!(next.0 as f64 <= cap, "{:?} -> {:?}", current, next);
            } else {
                prop_assert!(next < current || current == bounds.min);
                let slack = current.0 as f64 * 1e-9 + 1.0;
                let floor = (current.0 as f64 * policy.lower_factor).floor() - slack;
                prop_assert!(next.0 as f64 >= floor, "{:?} -> {:?}", current, next);
            }
        }
    }
}
