//! Pure construction of the compiler command lines, one per backend, tested on their arguments.

use std::collections::BTreeMap;

use cargo_metadata::camino::Utf8PathBuf;
use serde::Serialize;

use crate::config::BuildOptions;
use crate::target::{Arch, Compiler, GlibcVersion, Libc, Target};

/// A command to run, fully described, so it can be printed, tested and executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildCommand {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// For `cross`: the image it compiles in, and which setting chose it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_image: Option<CrossImage>,
}

/// The image `cross` will compile a target in, and where that choice comes from, for
/// `--dry-run`, `-v` and its errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrossImage {
    /// The target triple.
    pub target: String,
    /// The image, or `None` when cross picks its own.
    pub image: Option<String>,
    /// The setting that chose it, e.g. "`cross-image` in the metadata".
    pub source: String,
}

impl CrossImage {
    /// One line for people: `cross image for T: IMAGE (SOURCE)`.
    pub fn display(&self) -> String {
        match &self.image {
            Some(image) => format!("cross image for {}: {image} ({})", self.target, self.source),
            None => format!("cross image for {}: {}", self.target, self.source),
        }
    }
}

impl BuildCommand {
    /// A shell-like rendering for messages (`KEY=value program args...`).
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(self.program.clone());
        parts.extend(self.args.iter().map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        }));
        parts.join(" ")
    }
}

/// One compiler invocation: binaries of some packages for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompileUnit {
    /// The packages.
    pub packages: Vec<String>,
    /// The binaries to build (their names are unique among the packages' binaries).
    pub bins: Vec<String>,
    /// The target.
    pub target: Target,
    /// The backend.
    pub compiler: Compiler,
    /// The glibc to pin gnu builds to (zigbuild only), from the base image.
    pub glibc: Option<GlibcVersion>,
    /// The image `cross` compiles in (`cross-image`), when configured.
    pub cross_image: Option<String>,
}

/// The environment variable `cross` reads a target's image from.
pub fn cross_image_var(triple: &str) -> String {
    format!(
        "CROSS_TARGET_{}_IMAGE",
        triple.to_uppercase().replace(['-', '.'], "_")
    )
}

/// Everything a command needs besides the unit.
#[derive(Debug, Clone)]
pub struct CommandContext<'a> {
    /// The workspace manifest.
    pub workspace_manifest: &'a Utf8PathBuf,
    /// The profile.
    pub profile: &'a str,
    /// Feature flags and `--locked`.
    pub build: &'a BuildOptions,
    /// `--color` for cargo (`always`, `never`), if any.
    pub color: Option<&'a str>,
    /// The architecture of this machine.
    pub host: Option<Arch>,
    /// The user's environment, consulted so that a linker they set is never overridden.
    pub user_env: &'a BTreeMap<String, String>,
    /// The images a `Cross.toml` names, by target triple (`[target.<triple>] image`).
    pub cross_toml: &'a BTreeMap<String, String>,
    /// The toolchain cross compiles with (see [`super::toolchain::cross_env`]), when known.
    pub toolchain: Option<&'a super::toolchain::Toolchain>,
}

/// The environment variable cargo reads a target's linker from.
pub fn linker_var(triple: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace(['-', '.'], "_")
    )
}

/// Builds the command for a unit.
pub fn build_command(unit: &CompileUnit, ctx: &CommandContext<'_>) -> BuildCommand {
    let triple = unit.target.triple();
    let (program, subcommand, target_arg) = match unit.compiler {
        Compiler::Cargo => ("cargo", "build", triple.clone()),
        // zigbuild takes the glibc version as a suffix of the triple, e.g.
        // `x86_64-unknown-linux-gnu.2.26`, and links against that version's symbols.
        Compiler::Zigbuild => match (unit.target.libc, unit.glibc) {
            (Libc::Gnu, Some(v)) => ("cargo", "zigbuild", format!("{triple}.{v}")),
            _ => ("cargo", "zigbuild", triple.clone()),
        },
        Compiler::Cross => ("cross", "build", triple.clone()),
    };
    let mut args = vec![subcommand.to_string()];
    // cross mounts the workspace at another path in its container, where the host's absolute
    // manifest path does not exist: it runs in the workspace root and finds the manifest there.
    if unit.compiler != Compiler::Cross {
        args.push("--manifest-path".to_string());
        args.push(ctx.workspace_manifest.to_string());
    }
    for package in &unit.packages {
        args.push("--package".into());
        args.push(package.clone());
    }
    for bin in &unit.bins {
        args.push("--bin".into());
        args.push(bin.clone());
    }
    args.extend([
        "--target".to_string(),
        target_arg,
        "--profile".to_string(),
        ctx.profile.to_string(),
        "--message-format=json-render-diagnostics".to_string(),
        // One broken package must not stop the others' binaries.
        "--keep-going".to_string(),
    ]);
    if !ctx.build.features.is_empty() {
        args.push("--features".into());
        args.push(ctx.build.features.join(","));
    }
    if ctx.build.all_features {
        args.push("--all-features".into());
    }
    if ctx.build.no_default_features {
        args.push("--no-default-features".into());
    }
    if ctx.build.locked {
        args.push("--locked".into());
    }
    if let Some(color) = ctx.color {
        args.push("--color".into());
        args.push(color.to_string());
    }

    let mut env = BTreeMap::new();
    // The configured image goes to cross as its own setting, unless the user set that
    // variable already (a Cross.toml `image` is left to cross: the variable would win).
    if let (Compiler::Cross, Some(image)) = (unit.compiler, &unit.cross_image) {
        let var = cross_image_var(&triple);
        if !ctx.user_env.contains_key(&var) {
            env.insert(var, image.clone());
        }
    }
    let cross_image = (unit.compiler == Compiler::Cross).then(|| cross_image(unit, ctx));
    if let (Compiler::Cross, Some(toolchain)) = (unit.compiler, ctx.toolchain) {
        env.extend(super::toolchain::cross_env(toolchain));
    }
    if unit.compiler == Compiler::Cargo && Some(unit.target.arch) != ctx.host {
        // Plain cargo needs a linker for the foreign architecture. rustc ships rust-lld and the
        // musl targets carry their own C runtime, so musl needs nothing else; glibc needs the
        // cross gcc from the distribution (its libc and crt files).
        let linker = match unit.target.libc {
            Libc::Musl => "rust-lld".to_string(),
            Libc::Gnu => format!("{}-linux-gnu-gcc", unit.target.arch.triple_prefix()),
        };
        let var = linker_var(&triple);
        if !ctx.user_env.contains_key(&var) {
            env.insert(var, linker);
        }
    }
    BuildCommand {
        program: program.to_string(),
        args,
        env,
        cross_image,
    }
}

/// The image cross will use for the unit's target, in cross's own order: the
/// `CROSS_TARGET_<TRIPLE>_IMAGE` variable (the user's, else the one `cross-image` sets), then
/// `Cross.toml`, then its own image for the target.
pub fn cross_image(unit: &CompileUnit, ctx: &CommandContext<'_>) -> CrossImage {
    let triple = unit.target.triple();
    let var = cross_image_var(&triple);
    let (image, source) = if let Some(image) = ctx.user_env.get(&var) {
        (Some(image.clone()), format!("{var} in the environment"))
    } else if let Some(image) = &unit.cross_image {
        (
            Some(image.clone()),
            format!("`cross-image` in the metadata, passed as {var}"),
        )
    } else if let Some(image) = ctx.cross_toml.get(&triple) {
        (Some(image.clone()), "Cross.toml".to_string())
    } else {
        (
            None,
            format!("cross's own, ghcr.io/cross-rs/{triple}:<its version>; set `cross-image` or {var} for another"),
        )
    };
    CrossImage {
        target: triple,
        image,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(
        manifest: &'a Utf8PathBuf,
        build: &'a BuildOptions,
        env: &'a BTreeMap<String, String>,
    ) -> CommandContext<'a> {
        CommandContext {
            workspace_manifest: manifest,
            profile: "release",
            build,
            color: None,
            host: Some(Arch::X86_64),
            user_env: env,
            cross_toml: &NO_CROSS_TOML,
            toolchain: None,
        }
    }

    static NO_CROSS_TOML: BTreeMap<String, String> = BTreeMap::new();

    fn unit(compiler: Compiler, arch: Arch, libc: Libc) -> CompileUnit {
        CompileUnit {
            packages: vec!["echo".into()],
            bins: vec!["a".into(), "b".into()],
            target: Target { arch, libc },
            compiler,
            glibc: Some(GlibcVersion {
                major: 2,
                minor: 26,
            }),
            cross_image: None,
        }
    }

    #[test]
    fn cross_gets_the_configured_image_unless_the_user_set_one() {
        let (manifest, build) = (Utf8PathBuf::from("/w/Cargo.toml"), BuildOptions::default());
        let mut u = unit(Compiler::Cross, Arch::Arm64, Libc::Gnu);
        u.cross_image = Some("local/cross:aarch64".into());
        let none = BTreeMap::new();
        let cmd = build_command(&u, &ctx(&manifest, &build, &none));
        assert_eq!(cmd.program, "cross");
        assert_eq!(
            cmd.env.get("CROSS_TARGET_AARCH64_UNKNOWN_LINUX_GNU_IMAGE"),
            Some(&"local/cross:aarch64".to_string())
        );
        let user: BTreeMap<String, String> = [(
            "CROSS_TARGET_AARCH64_UNKNOWN_LINUX_GNU_IMAGE".to_string(),
            "mine".to_string(),
        )]
        .into();
        let cmd = build_command(&u, &ctx(&manifest, &build, &user));
        assert!(cmd.env.is_empty(), "{:?}", cmd.env);
        // Other backends never get it.
        u.compiler = Compiler::Cargo;
        let cmd = build_command(&u, &ctx(&manifest, &build, &none));
        assert!(!cmd.env.keys().any(|k| k.starts_with("CROSS_")));
    }

    /// cross compiles with the workspace's toolchain, given as a path so that it finds it
    /// installed, and as a custom toolchain so that it adds nothing to it.
    #[test]
    fn cross_runs_on_the_workspaces_toolchain_which_it_may_not_change() {
        let (manifest, build) = (Utf8PathBuf::from("/w/Cargo.toml"), BuildOptions::default());
        let none = BTreeMap::new();
        let toolchain = crate::compile::toolchain::Toolchain::at(
            "/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu".into(),
        );
        let mut context = ctx(&manifest, &build, &none);
        context.toolchain = Some(&toolchain);
        let mut u = unit(Compiler::Cross, Arch::X86_64, Libc::Musl);
        let cmd = build_command(&u, &context);
        assert_eq!(
            cmd.display(),
            "CROSS_CUSTOM_TOOLCHAIN=1 RUSTUP_TOOLCHAIN=/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu \
             cross build --package echo --bin a --bin b --target x86_64-unknown-linux-musl \
             --profile release --message-format=json-render-diagnostics --keep-going"
        );
        // The other backends run through rustup's proxies as the user set them up.
        for compiler in [Compiler::Cargo, Compiler::Zigbuild] {
            u.compiler = compiler;
            let cmd = build_command(&u, &context);
            assert!(cmd.env.is_empty(), "{:?}", cmd.env);
        }
    }

    /// The image cross will use, in cross's order: the variable the user set, the metadata's
    /// `cross-image` (passed as that variable), Cross.toml, cross's own.
    #[test]
    fn the_cross_image_shown_follows_crosss_precedence() {
        let (manifest, build) = (Utf8PathBuf::from("/w/Cargo.toml"), BuildOptions::default());
        let var = "CROSS_TARGET_AARCH64_UNKNOWN_LINUX_GNU_IMAGE";
        let mut u = unit(Compiler::Cross, Arch::Arm64, Libc::Gnu);
        let none = BTreeMap::new();
        let toml: BTreeMap<String, String> = [(
            "aarch64-unknown-linux-gnu".to_string(),
            "toml/img:1".to_string(),
        )]
        .into();
        let user: BTreeMap<String, String> = [(var.to_string(), "env/img:1".to_string())].into();
        let shown = |u: &CompileUnit, env: &BTreeMap<String, String>, toml| {
            let mut c = ctx(&manifest, &build, env);
            c.cross_toml = toml;
            let image = build_command(u, &c)
                .cross_image
                .expect("cross shows its image");
            (image.image.clone(), image.display())
        };

        let (image, line) = shown(&u, &none, &NO_CROSS_TOML);
        assert_eq!(image, None);
        assert!(
            line.contains("ghcr.io/cross-rs/aarch64-unknown-linux-gnu") && line.contains(var),
            "{line}"
        );
        let (image, line) = shown(&u, &none, &toml);
        assert_eq!(
            (image.as_deref(), line.contains("Cross.toml")),
            (Some("toml/img:1"), true)
        );
        u.cross_image = Some("meta/img:1".into());
        let (image, line) = shown(&u, &none, &toml);
        assert_eq!(image.as_deref(), Some("meta/img:1"));
        assert!(
            line.contains("`cross-image`") && line.contains(var),
            "{line}"
        );
        let (image, line) = shown(&u, &user, &toml);
        assert_eq!(image.as_deref(), Some("env/img:1"));
        assert!(line.contains("in the environment"), "{line}");
        // Other backends show none.
        u.compiler = Compiler::Cargo;
        assert_eq!(
            build_command(&u, &ctx(&manifest, &build, &none)).cross_image,
            None
        );
    }

    /// Every backend for every target, on an x86_64 host: the full command lines, with the
    /// linker variables plain cargo needs for arm64.
    #[test]
    fn all_backends_for_all_targets() {
        let manifest = Utf8PathBuf::from("/ws/Cargo.toml");
        let build = BuildOptions::default();
        let env = BTreeMap::new();
        let ctx = ctx(&manifest, &build, &env);
        let mut text = String::new();
        for compiler in [Compiler::Cargo, Compiler::Zigbuild, Compiler::Cross] {
            for arch in Arch::ALL {
                for libc in [Libc::Musl, Libc::Gnu] {
                    let cmd = build_command(&unit(compiler, arch, libc), &ctx);
                    text.push_str(&format!("{compiler} {arch} {libc}:\n  {}\n", cmd.display()));
                }
            }
        }
        insta::assert_snapshot!(text);
    }

    #[test]
    fn zigbuild_pins_the_base_images_glibc() {
        let manifest = Utf8PathBuf::from("/ws/Cargo.toml");
        let build = BuildOptions::default();
        let env = BTreeMap::new();
        let mut u = unit(Compiler::Zigbuild, Arch::X86_64, Libc::Gnu);
        u.glibc = Some(GlibcVersion {
            major: 2,
            minor: 34,
        });
        let cmd = build_command(&u, &ctx(&manifest, &build, &env));
        assert!(
            cmd.args
                .contains(&"x86_64-unknown-linux-gnu.2.34".to_string()),
            "{:?}",
            cmd.args
        );
        u.glibc = None;
        let cmd = build_command(&u, &ctx(&manifest, &build, &env));
        assert!(
            cmd.args.contains(&"x86_64-unknown-linux-gnu".to_string()),
            "{:?}",
            cmd.args
        );
    }

    #[test]
    fn features_profile_locked_and_color_are_passed_through() {
        let manifest = Utf8PathBuf::from("/ws/Cargo.toml");
        let build = BuildOptions {
            profile: None,
            features: vec!["a".into(), "b".into()],
            all_features: true,
            no_default_features: true,
            locked: true,
        };
        let env = BTreeMap::new();
        let mut c = ctx(&manifest, &build, &env);
        c.profile = "dist";
        c.color = Some("always");
        let cmd = build_command(&unit(Compiler::Cargo, Arch::X86_64, Libc::Musl), &c);
        let args = cmd.args.join(" ");
        assert!(args.contains("--profile dist"), "{args}");
        assert!(
            args.ends_with(
                "--features a,b --all-features --no-default-features --locked --color always"
            ),
            "{args}"
        );
    }

    #[test]
    fn a_linker_set_by_the_user_is_kept() {
        let manifest = Utf8PathBuf::from("/ws/Cargo.toml");
        let build = BuildOptions::default();
        let env: BTreeMap<String, String> = [(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER".to_string(),
            "my-ld".to_string(),
        )]
        .into();
        let cmd = build_command(
            &unit(Compiler::Cargo, Arch::Arm64, Libc::Musl),
            &ctx(&manifest, &build, &env),
        );
        assert!(cmd.env.is_empty(), "{:?}", cmd.env);
    }

    #[test]
    fn native_arch_needs_no_linker_on_an_arm64_host() {
        let manifest = Utf8PathBuf::from("/ws/Cargo.toml");
        let build = BuildOptions::default();
        let env = BTreeMap::new();
        let mut c = ctx(&manifest, &build, &env);
        c.host = Some(Arch::Arm64);
        assert!(
            build_command(&unit(Compiler::Cargo, Arch::Arm64, Libc::Musl), &c)
                .env
                .is_empty()
        );
        let cmd = build_command(&unit(Compiler::Cargo, Arch::X86_64, Libc::Musl), &c);
        assert_eq!(
            cmd.env["CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER"],
            "rust-lld"
        );
    }
}
