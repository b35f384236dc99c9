//! Resources and bundles (SPEC §3, §5): what an agent buys to execute.
//!
//! Quantities are held as integers in a base unit per resource (CPU in
//! milliseconds, memory in MB, tokens, attention in millionths of the share) so that
//! clearing and reserve prices are exact integer arithmetic. Floats exist only at
//! the edge, in [`BundleSpec`], and are validated once by [`Bundle::parse`].

use crate::credits::Credits;
use std::fmt;

/// The four markets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    CpuSeconds,
    MemoryMb,
    Tokens,
    AttentionShare,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::CpuSeconds,
        Resource::MemoryMb,
        Resource::Tokens,
        Resource::AttentionShare,
    ];

    /// The name used in the API, the database and config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Resource::CpuSeconds => "cpu_seconds",
            Resource::MemoryMb => "memory_mb",
            Resource::Tokens => "tokens",
            Resource::AttentionShare => "attention_share",
        }
    }

    pub fn parse(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Base units in one displayed unit (e.g. 1000 ms in one CPU second).
    pub const fn scale(self) -> u64 {
        match self {
            Resource::CpuSeconds => 1_000,
            Resource::MemoryMb => 1,
            Resource::Tokens => 1,
            Resource::AttentionShare => 1_000_000,
        }
    }

    /// Position in a [`ResourceVec`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Converts a displayed quantity to base units, refusing negative, non-finite,
    /// over-precise or too large values.
    pub fn to_base(self, quantity: f64) -> Result<u64, BundleError> {
        if !quantity.is_finite() {
            return Err(BundleError::NotFinite(self));
        }
        if quantity < 0.0 {
            return Err(BundleError::Negative(self));
        }
        let scaled = quantity * self.scale() as f64;
        // 2^53: beyond it a float no longer names an exact integer.
        if scaled > 9_007_199_254_740_992.0 {
            return Err(BundleError::TooLarge(self));
        }
        Ok(scaled.round() as u64)
    }

    /// Converts base units back to the displayed unit.
    pub fn to_display(self, base: u64) -> f64 {
        base as f64 / self.scale() as f64
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One integer quantity per resource, in base units, indexed by [`Resource::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ResourceVec(pub [u64; 4]);

impl ResourceVec {
    pub fn get(&self, r: Resource) -> u64 {
        self.0[r.index()]
    }

    pub fn set(&mut self, r: Resource, v: u64) {
        self.0[r.index()] = v;
    }

    /// True when every component of `self` is ≤ the one in `other`.
    pub fn fits_within(&self, other: &ResourceVec) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a <= b)
    }

    pub fn saturating_sub(&self, other: &ResourceVec) -> ResourceVec {
        let mut out = *self;
        for (o, b) in out.0.iter_mut().zip(other.0.iter()) {
            *o = o.saturating_sub(*b);
        }
        out
    }

    pub fn saturating_add(&self, other: &ResourceVec) -> ResourceVec {
        let mut out = *self;
        for (o, b) in out.0.iter_mut().zip(other.0.iter()) {
            *o = o.saturating_add(*b);
        }
        out
    }
}

/// A price: micro-credits per displayed unit of one resource (per CPU second, per
/// MB, per token, per whole attention share).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(pub i64);

/// The current price of each resource, indexed by [`Resource::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prices(pub [Price; 4]);

impl Prices {
    pub fn get(&self, r: Resource) -> Price {
        self.0[r.index()]
    }

    /// The reserve price of a bundle: Σ price × quantity, each term rounded up to a
    /// whole micro-credit so that a bundle is never priced below its cost.
    pub fn reserve(&self, bundle: &Bundle) -> Credits {
        let mut total: i128 = 0;
        for r in Resource::ALL {
            let q = i128::from(bundle.quantities.get(r));
            let p = i128::from(self.get(r).0.max(0));
            let scale = i128::from(r.scale());
            total += (p * q + scale - 1) / scale;
        }
        Credits::from_micros(i64::try_from(total).unwrap_or(i64::MAX))
    }
}

/// Upper bounds on what one bundle may ask for (from config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BundleLimits {
    pub max_cpu_seconds: f64,
    pub max_memory_mb: f64,
    pub max_tokens: f64,
    pub max_wall_seconds: f64,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_cpu_seconds: 600.0,
            max_memory_mb: 4096.0,
            max_tokens: 1_000_000.0,
            max_wall_seconds: 3600.0,
        }
    }
}

/// A bundle as a client states it, in displayed units. Validate with [`Bundle::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSpec {
    #[serde(default)]
    pub cpu_seconds: f64,
    #[serde(default)]
    pub memory_mb: f64,
    #[serde(default)]
    pub tokens: f64,
    #[serde(default)]
    pub attention_share: f64,
    #[serde(default)]
    pub wall_seconds: Option<f64>,
}

/// Why a bundle is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("{0} must be a finite number")]
    NotFinite(Resource),
    #[error("{0} must not be negative")]
    Negative(Resource),
    #[error("{0} is too large")]
    TooLarge(Resource),
    #[error("{resource} exceeds the cap of {cap}")]
    OverCap { resource: Resource, cap: String },
    #[error("attention_share must be between 0 and 1")]
    AttentionOverOne,
    #[error("tokens and memory_mb must be whole numbers")]
    Fractional,
    #[error("wall_seconds must be a finite number greater than 0 and at most {cap}")]
    BadWall { cap: String },
    #[error("a bundle must ask for some CPU time and some memory")]
    Empty,
}

/// A validated bundle of resources; the only way to get one is [`Bundle::parse`]
/// (or [`Bundle::from_base`] for values read back from the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bundle {
    quantities: ResourceVec,
    /// Wall-clock window in milliseconds; `None` means the configured default.
    wall_millis: Option<u64>,
}

impl Bundle {
    /// Validates a client's bundle against the configured caps.
    ///
    /// An execution needs CPU time and memory to exist at all, so a bundle without
    /// both is refused as empty; tokens and attention are optional.
    pub fn parse(spec: &BundleSpec, limits: &BundleLimits) -> Result<Bundle, BundleError> {
        let mut q = ResourceVec::default();
        let values = [
            (
                Resource::CpuSeconds,
                spec.cpu_seconds,
                limits.max_cpu_seconds,
            ),
            (Resource::MemoryMb, spec.memory_mb, limits.max_memory_mb),
            (Resource::Tokens, spec.tokens, limits.max_tokens),
            (Resource::AttentionShare, spec.attention_share, 1.0),
        ];
        for (r, v, cap) in values {
            let base = r.to_base(v)?;
            if v > cap {
                if r == Resource::AttentionShare {
                    return Err(BundleError::AttentionOverOne);
                }
                return Err(BundleError::OverCap {
                    resource: r,
                    cap: cap.to_string(),
                });
            }
            q.set(r, base);
        }
        if spec.tokens.fract() != 0.0 || spec.memory_mb.fract() != 0.0 {
            return Err(BundleError::Fractional);
        }
        let wall_millis = match spec.wall_seconds {
            None => None,
            Some(w) => {
                let cap = limits.max_wall_seconds;
                if !w.is_finite() || w <= 0.0 || w > cap {
                    return Err(BundleError::BadWall {
                        cap: cap.to_string(),
                    });
                }
                Some((w * 1000.0).round() as u64)
            }
        };
        if q.get(Resource::CpuSeconds) == 0 || q.get(Resource::MemoryMb) == 0 {
            return Err(BundleError::Empty);
        }
        Ok(Bundle {
            quantities: q,
            wall_millis,
        })
    }

    /// Rebuilds a bundle from base units already validated once (e.g. from the store).
    pub fn from_base(quantities: ResourceVec, wall_millis: Option<u64>) -> Bundle {
        Bundle {
            quantities,
            wall_millis,
        }
    }

    pub fn quantities(&self) -> &ResourceVec {
        &self.quantities
    }

    pub fn get(&self, r: Resource) -> u64 {
        self.quantities.get(r)
    }

    pub fn wall_millis(&self) -> Option<u64> {
        self.wall_millis
    }

    /// The bundle in displayed units.
    pub fn to_spec(&self) -> BundleSpec {
        BundleSpec {
            cpu_seconds: Resource::CpuSeconds.to_display(self.get(Resource::CpuSeconds)),
            memory_mb: Resource::MemoryMb.to_display(self.get(Resource::MemoryMb)),
            tokens: Resource::Tokens.to_display(self.get(Resource::Tokens)),
            attention_share: Resource::AttentionShare
                .to_display(self.get(Resource::AttentionShare)),
            wall_seconds: self.wall_millis.map(|w| w as f64 / 1000.0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(cpu: f64, mem: f64) -> BundleSpec {
        BundleSpec {
            cpu_seconds: cpu,
            memory_mb: mem,
            ..BundleSpec::default()
        }
    }

    #[test]
    fn valid_bundle_is_held_in_base_units() {
        let s = BundleSpec {
            tokens: 500.0,
            attention_share: 0.25,
            ..spec(1.5, 256.0)
        };
        let b = Bundle::parse(&s, &BundleLimits::default()).unwrap();
        assert_eq!(b.get(Resource::CpuSeconds), 1500);
        assert_eq!(b.get(Resource::MemoryMb), 256);
        assert_eq!(b.get(Resource::Tokens), 500);
        assert_eq!(b.get(Resource::AttentionShare), 250_000);
        assert_eq!(b.to_spec(), s);
    }

    #[test]
    fn invalid_bundles_are_refused_by_name() {
        let l = BundleLimits::default();
        assert_eq!(
            Bundle::parse(&BundleSpec::default(), &l),
            Err(BundleError::Empty)
        );
        assert_eq!(Bundle::parse(&spec(0.0, 10.0), &l), Err(BundleError::Empty));
        assert_eq!(
            Bundle::parse(&spec(-1.0, 10.0), &l),
            Err(BundleError::Negative(Resource::CpuSeconds))
        );
        assert_eq!(
            Bundle::parse(&spec(f64::NAN, 10.0), &l),
            Err(BundleError::NotFinite(Resource::CpuSeconds))
        );
        assert_eq!(
            Bundle::parse(&spec(1.0, f64::INFINITY), &l),
            Err(BundleError::NotFinite(Resource::MemoryMb))
        );
        assert!(matches!(
            Bundle::parse(&spec(1e9, 10.0), &l),
            Err(BundleError::OverCap {
                resource: Resource::CpuSeconds,
                ..
            })
        ));
        assert!(matches!(
            Bundle::parse(&spec(1e300, 10.0), &l),
            Err(BundleError::TooLarge(_))
        ));
        let over = BundleSpec {
            attention_share: 1.5,
            ..spec(1.0, 1.0)
        };
        assert_eq!(Bundle::parse(&over, &l), Err(BundleError::AttentionOverOne));
        assert_eq!(
            Bundle::parse(&spec(1.0, 1.5), &l),
            Err(BundleError::Fractional)
        );
        let wall = BundleSpec {
            wall_seconds: Some(0.0),
            ..spec(1.0, 1.0)
        };
        assert!(matches!(
            Bundle::parse(&wall, &l),
            Err(BundleError::BadWall { .. })
        ));
    }

    #[test]
    fn reserve_is_exact_and_rounds_up() {
        // cpu 1.0 cr/s, memory 0.1 cr/MB, tokens 0.001 cr, attention 10 cr.
        let prices = Prices([
            Price(1_000_000),
            Price(100_000),
            Price(1_000),
            Price(10_000_000),
        ]);
        let s = BundleSpec {
            tokens: 1000.0,
            attention_share: 0.5,
            ..spec(2.0, 128.0)
        };
        let b = Bundle::parse(&s, &BundleLimits::default()).unwrap();
        // 2 + 12.8 + 1 + 5 = 20.8 credits.
        assert_eq!(prices.reserve(&b), Credits::from_micros(20_800_000));
        let odd = Prices([Price(1), Price(0), Price(0), Price(0)]);
        let tiny = Bundle::parse(&spec(0.001, 1.0), &BundleLimits::default()).unwrap();
        assert_eq!(odd.reserve(&tiny), Credits::from_micros(1));
    }
}
