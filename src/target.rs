//! Architectures, C libraries and compiler backends, and the Rust target triples they map to.
//!
//! Lambda speaks of `x86_64` and `arm64`; Rust speaks of `x86_64-unknown-linux-musl` and friends.
//! This module is the one place where the two vocabularies meet.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// A Lambda instruction set architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 64-bit x86 (Lambda's `x86_64`).
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit ARM, Graviton (Lambda's `arm64`).
    Arm64,
}

impl Arch {
    /// Every architecture Lambda runs, in Lambda's order.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    /// The name Lambda uses in `Architectures`.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The name OCI uses in an image config and platform (`amd64`, `arm64`).
    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The first component of the Rust target triple.
    pub fn triple_prefix(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// The architecture of the machine this program runs on, if Lambda has it.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lambda_name())
    }
}

impl FromStr for Arch {
    type Err = String;

    /// Accepts Lambda's names and the common aliases (`amd64`, `aarch64`), so that a user who
    /// thinks in Docker or Rust terms is not punished for it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" | "amd64" | "x86-64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => Err(format!(
                "unknown architecture `{other}`: expected `x86_64` or `arm64`"
            )),
        }
    }
}

/// The C library a function links against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    /// Static musl: no runtime dependency on the base image's libraries (the default).
    #[default]
    Musl,
    /// Dynamic glibc: must not need symbols newer than the base image's glibc.
    Gnu,
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Libc::Musl => "musl",
            Libc::Gnu => "gnu",
        })
    }
}

impl FromStr for Libc {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "musl" => Ok(Libc::Musl),
            "gnu" | "glibc" => Ok(Libc::Gnu),
            other => Err(format!("unknown libc `{other}`: expected `musl` or `gnu`")),
        }
    }
}

/// The program that cross-compiles a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    /// Plain `cargo build` with rustc's own targets (aarch64-musl links with `rust-lld`).
    #[default]
    Cargo,
    /// `cargo zigbuild`, which links with zig and can pin the glibc version.
    Zigbuild,
    /// `cross build`, which compiles inside a container.
    Cross,
}

impl fmt::Display for Compiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compiler::Cargo => "cargo",
            Compiler::Zigbuild => "zigbuild",
            Compiler::Cross => "cross",
        })
    }
}

impl FromStr for Compiler {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cargo" => Ok(Compiler::Cargo),
            "zigbuild" | "cargo-zigbuild" => Ok(Compiler::Zigbuild),
            "cross" => Ok(Compiler::Cross),
            other => Err(format!(
                "unknown compiler `{other}`: expected `cargo`, `zigbuild` or `cross`"
            )),
        }
    }
}

/// Deserializes through `FromStr`, so that manifests accept the same aliases as the command line
/// and a bad value gets the same message ("unknown architecture `x86`: expected ...").
macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_from_str!(Arch, Libc, Compiler);

/// A compilation target: an architecture and a C library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// The instruction set.
    pub arch: Arch,
    /// The C library.
    pub libc: Libc,
}

impl Target {
    /// The Rust target triple, e.g. `aarch64-unknown-linux-musl`.
    pub fn triple(self) -> String {
        format!("{}-unknown-linux-{}", self.arch.triple_prefix(), self.libc)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.triple())
    }
}

/// A glibc version such as 2.26, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GlibcVersion {
    /// Major version (always 2 in practice).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl GlibcVersion {
    /// Parses `2.26` or a symbol version name such as `GLIBC_2.26` or `GLIBC_2.2.5`
    /// (a patch level is ignored: it never raises the minor version).
    pub fn parse(s: &str) -> Option<GlibcVersion> {
        let s = s.strip_prefix("GLIBC_").unwrap_or(s);
        let mut parts = s.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(GlibcVersion { major, minor })
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_for_every_arch_and_libc() {
        let t = |arch, libc| Target { arch, libc }.triple();
        assert_eq!(t(Arch::X86_64, Libc::Musl), "x86_64-unknown-linux-musl");
        assert_eq!(t(Arch::X86_64, Libc::Gnu), "x86_64-unknown-linux-gnu");
        assert_eq!(t(Arch::Arm64, Libc::Musl), "aarch64-unknown-linux-musl");
        assert_eq!(t(Arch::Arm64, Libc::Gnu), "aarch64-unknown-linux-gnu");
    }

    #[test]
    fn arch_accepts_aliases_and_rejects_x86() {
        assert_eq!("amd64".parse::<Arch>(), Ok(Arch::X86_64));
        assert_eq!("aarch64".parse::<Arch>(), Ok(Arch::Arm64));
        let err = "x86".parse::<Arch>().unwrap_err();
        assert!(err.contains("`x86`") && err.contains("x86_64"), "{err}");
    }

    #[test]
    fn glibc_versions_order_numerically() {
        let v = |s| GlibcVersion::parse(s).unwrap();
        assert!(v("GLIBC_2.9") < v("GLIBC_2.26"));
        assert!(v("GLIBC_2.2.5") < v("2.26"));
        assert_eq!(v("2.34").to_string(), "2.34");
        assert_eq!(GlibcVersion::parse("GLIBC_PRIVATE"), None);
    }
}
