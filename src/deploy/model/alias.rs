//! Aliases and what hangs on them, as values: weighted routing (canary releases), provisioned
//! concurrency, and the published versions an alias can point at.
//!
//! Weights are kept in hundredths of a percent ([`Weight`]) so that plans compare exactly;
//! Lambda's `AdditionalVersionWeights` are fractions of 1.

use std::fmt;

use serde::{Serialize, Serializer};

/// A share of an alias's invocations, in hundredths of a percent (`Weight(1000)` is 10%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Weight(pub u32);

impl Weight {
    /// Parses `10%`, `10` or `2.5%`: more than 0 and less than 100 percent, at most two
    /// decimals.
    pub fn parse(text: &str) -> Option<Weight> {
        let number = text.trim().trim_end_matches('%').trim();
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.len() > 2 || !fraction.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let whole: u32 = whole.parse().ok()?;
        let fraction: u32 = format!("{fraction:0<2}").parse().ok()?;
        let weight = whole.checked_mul(100)?.checked_add(fraction)?;
        (1..10_000).contains(&weight).then_some(Weight(weight))
    }

    /// As Lambda takes it: a fraction of 1.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// From Lambda's fraction of 1, rounded to hundredths of a percent.
    pub fn from_fraction(fraction: f64) -> Weight {
        Weight((fraction * 10_000.0).round().clamp(0.0, 10_000.0) as u32)
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, hundredths) = (self.0 / 100, self.0 % 100);
        match hundredths {
            0 => write!(f, "{whole}%"),
            h if h % 10 == 0 => write!(f, "{whole}.{}%", h / 10),
            h => write!(f, "{whole}.{h:02}%"),
        }
    }
}

impl Serialize for Weight {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A second version taking a share of an alias's invocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Canary {
    /// The version.
    pub version: String,
    /// Its share.
    pub weight: Weight,
}

/// Where an alias sends invocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routing {
    /// The version that gets the rest.
    pub version: String,
    /// The canary, if any.
    pub canary: Option<Canary>,
}

impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.canary {
            None => write!(f, "version {}", self.version),
            Some(c) => write!(
                f,
                "version {} ({}) + version {} ({})",
                self.version,
                Weight(10_000 - c.weight.0),
                c.version,
                c.weight
            ),
        }
    }
}

/// Provisioned concurrency on an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provisioned {
    /// Environments asked for.
    pub requested: i32,
    /// `IN_PROGRESS`, `READY` or `FAILED`.
    pub status: String,
}

/// A published version and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published {
    /// Its number.
    pub number: u64,
    /// Its `CodeSha256`: for an Image function, the hex of the image's manifest digest.
    pub code_sha256: Option<String>,
}

impl Published {
    /// The manifest digest of its image (`sha256:...`).
    pub fn digest(&self) -> Option<String> {
        self.code_sha256.as_ref().map(|hex| format!("sha256:{hex}"))
    }
}

/// The newest of `versions` whose code is `code_sha256`.
pub(crate) fn newest_with(versions: &[Published], code_sha256: &str) -> Option<String> {
    versions
        .iter()
        .filter(|v| v.code_sha256.as_deref() == Some(code_sha256))
        .map(|v| v.number)
        .max()
        .map(|n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse_as_percentages_and_print_back() {
        for (text, weight, shown) in [
            ("10%", 1000, "10%"),
            ("10", 1000, "10%"),
            ("2.5%", 250, "2.5%"),
            ("0.01%", 1, "0.01%"),
            ("99.99", 9999, "99.99%"),
        ] {
            let w = Weight::parse(text).unwrap();
            assert_eq!(w, Weight(weight), "{text}");
            assert_eq!(w.to_string(), shown);
        }
        for bad in ["0", "0%", "100%", "150", "-5", "x%", "1.234%", ""] {
            assert_eq!(Weight::parse(bad), None, "{bad}");
        }
        assert_eq!(Weight::from_fraction(0.1), Weight(1000));
        assert_eq!(Weight(1000).fraction(), 0.1);
    }

    #[test]
    fn routing_shows_both_versions_and_weights() {
        let r = Routing {
            version: "4".into(),
            canary: Some(Canary {
                version: "5".into(),
                weight: Weight(1000),
            }),
        };
        assert_eq!(r.to_string(), "version 4 (90%) + version 5 (10%)");
    }
}
