//! The container image runs what its Dockerfile says: no Docker daemon exists on these
//! machines, so this test reads the final stage of `../Dockerfile` (ENV, USER,
//! VOLUME, EXPOSE, STOPSIGNAL, HEALTHCHECK, ENTRYPOINT, CMD) and starts the `aurora`
//! binary this package builds with exactly those arguments and that environment
//! (nothing else inherited), the VOLUME path mapped to a temporary directory.
//!
//! The process runs in a network namespace of its own (`unshare --net`, as a
//! container does), so it can listen on exactly the ports the image sets (8080, 7946)
//! whatever else runs on this machine, and the test reads the sockets it listens on
//! from `/proc/<pid>/net/*`, which shows only that namespace. Probes run inside the
//! namespace with `nsenter`, using the image's own HEALTHCHECK command. Without the
//! right to make a namespace (not root) the test says so and checks only the
//! Dockerfile; CI runs as root.
//!
//! Checked: the HEALTHCHECK command passes, `/health/ready` answers 200, the TCP
//! ports listened on are the EXPOSEd tcp ports, a clustered start (the variables an
//! operator adds, as the Helm chart does) listens on the EXPOSEd udp port, and the
//! STOPSIGNAL ends the process with exit 0. The node runs as the image's USER (setpriv)
//! with the VOLUME owned by it and 0700, as the image creates it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cluster::wait_for;

const BIN: &str = env!("CARGO_BIN_EXE_aurora");

/// The final stage of a Dockerfile, as far as running it goes.
#[derive(Debug, Default)]
struct Stage {
    env: BTreeMap<String, String>,
    user: String,
    volumes: Vec<String>,
    expose: BTreeSet<(u16, String)>,
    stopsignal: String,
    healthcheck: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    /// `COPY`/`ADD` lines with `--chown=`: (owner, destination).
    chowned: Vec<(String, String)>,
}

/// Instructions with continuation lines joined and comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let joined = std::mem::take(&mut current);
                let (word, rest) = joined
                    .split_once(char::is_whitespace)
                    .unwrap_or((&joined, ""));
                out.push((word.to_ascii_uppercase(), rest.trim().to_owned()));
            }
        }
    }
    out
}

/// A JSON-array (exec form) argument; the shell form is refused, since the image
/// has no shell.
fn exec_form(what: &str, rest: &str) -> Vec<String> {
    serde_json::from_str(rest)
        .unwrap_or_else(|e| panic!("{what} must be in exec form (a JSON array), got {rest:?}: {e}"))
}

/// `KEY=value` pairs (values optionally double-quoted), or the old `KEY value` form.
fn env_pairs(rest: &str) -> Vec<(String, String)> {
    if !rest.contains('=') {
        let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
        return vec![(k.to_owned(), v.trim().to_owned())];
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
    out
}

fn parse(text: &str) -> Stage {
    let all = instructions(text);
    let last_from = all
        .iter()
        .rposition(|(w, _)| w == "FROM")
        .expect("the Dockerfile has a FROM");
    let mut stage = Stage::default();
    for (word, rest) in &all[last_from + 1..] {
        match word.as_str() {
            "ENV" => stage.env.extend(env_pairs(rest)),
            "USER" => stage.user = rest.clone(),
            "VOLUME" => stage.volumes = exec_form("VOLUME", rest),
            "EXPOSE" => {
                for port in rest.split_whitespace() {
                    let (n, proto) = port.split_once('/').unwrap_or((port, "tcp"));
                    stage
                        .expose
                        .insert((n.parse().expect("EXPOSE port"), proto.to_owned()));
                }
            }
            "STOPSIGNAL" => stage.stopsignal = rest.clone(),
            "HEALTHCHECK" => {
                let (_, cmd) = rest.split_once("CMD ").expect("HEALTHCHECK ... CMD [...]");
                stage.healthcheck = exec_form("HEALTHCHECK CMD", cmd.trim());
            }
            "ENTRYPOINT" => stage.entrypoint = exec_form("ENTRYPOINT", rest),
            "CMD" => stage.cmd = exec_form("CMD", rest),
            "COPY" | "ADD" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                if let Some(owner) = words.iter().find_map(|w| w.strip_prefix("--chown=")) {
                    let dest = words.last().copied().unwrap_or("");
                    stage.chowned.push((owner.to_owned(), dest.to_owned()));
                }
            }
            _ => {}
        }
    }
    stage
}

fn dockerfile() -> Stage {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse(&text)
}

/// The image's command line with the binary and the data volume mapped.
fn command_line(stage: &Stage, data: &Path) -> Vec<String> {
    let volume = stage.volumes.first().expect("a VOLUME").as_str();
    stage
        .entrypoint
        .iter()
        .chain(&stage.cmd)
        .skip(1)
        .map(|arg| map_arg(arg, volume, data))
        .collect()
}

fn map_arg(arg: &str, volume: &str, data: &Path) -> String {
    if arg == "/usr/local/bin/aurora" {
        return BIN.to_owned();
    }
    match arg.strip_prefix(volume) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{rest}", data.display())
        }
        _ => arg.to_owned(),
    }
}

/// Runs a setup command; panics naming it if it fails.
fn run(command: &mut Command) {
    let status = command.status().expect("run a setup command");
    assert!(status.success(), "{command:?}: {status}");
}

fn namespaces_allowed() -> bool {
    let have = |tool: &str, arg: &str| {
        Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    // `ip` (iproute2) brings up loopback inside; nsenter and setpriv are util-linux.
    if !(have("ip", "-V") && have("nsenter", "--version") && have("setpriv", "--version")) {
        return false;
    }
    Command::new("unshare")
        .args(["--net", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A node running in its own network namespace; killed when dropped.
struct Contained {
    child: Child,
    log: PathBuf,
}

impl Contained {
    fn start(stage: &Stage, root: &Path, extra_env: &[(&str, &str)]) -> Contained {
        let data = root.join("data");
        let log = root.join("aurora.log");
        let args = command_line(stage, &data);
        // The VOLUME as the image has it: owned by USER, 0700; the node runs as USER.
        let (uid, gid) = stage
            .user
            .split_once(':')
            .unwrap_or((&stage.user, &stage.user));
        std::fs::create_dir(&data).expect("volume dir");
        run(Command::new("chown").arg(format!("{uid}:{gid}")).arg(&data));
        run(Command::new("chmod").arg("0700").arg(&data));
        run(Command::new("chmod").arg("0711").arg(root));
        // `exec` keeps the pid: the child is the node itself, after lo is up (as
        // root, in the new namespace), with the uid and gid of USER.
        let child = Command::new("unshare")
            .args([
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && u=\"$0\" && g=\"$1\" && shift && exec setpriv --reuid=\"$u\" --regid=\"$g\" --clear-groups \"$@\"",
            ])
            .args([uid, gid])
            .arg(BIN)
            .args(&args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .envs(&stage.env)
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn unshare");
        Contained { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `argv` (an `aurora health` command) inside the node's namespace.
    fn probe(&self, argv: &[String]) -> (bool, String) {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid()))
            .arg("--")
            .args(
                argv.iter()
                    .map(|a| map_arg(a, "/nonexistent", Path::new(""))),
            )
            .output()
            .expect("nsenter");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn health(&self, url: &str) -> (bool, String) {
        self.probe(&[BIN.into(), "health".into(), "--url".into(), url.into()])
    }

    /// Local ports of the namespace's sockets: TCP in LISTEN, UDP bound. Each entry
    /// is (port, whether bound to a loopback address only).
    fn ports(&self, proto: &str) -> BTreeSet<(u16, bool)> {
        let mut out = BTreeSet::new();
        for file in [proto.to_owned(), format!("{proto}6")] {
            let text = std::fs::read_to_string(format!("/proc/{}/net/{file}", self.pid()))
                .unwrap_or_default();
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                    continue;
                };
                if proto == "tcp" && *state != "0A" {
                    continue; // not LISTEN
                }
                let (ip, port) = local.split_once(':').expect("addr:port");
                let port = u16::from_str_radix(port, 16).expect("hex port");
                // 0100007F is 127.0.0.1; the v6 loopback ends in 01000000.
                let loopback = ip == "0100007F" || ip == "00000000000000000000000001000000";
                out.insert((port, loopback));
            }
        }
        out
    }

    fn stop(&mut self, signal: &str) -> i32 {
        let sig = signal.strip_prefix("SIG").unwrap_or(signal);
        let sent = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{sig}");
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "still running 60 s after {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exposed(stage: &Stage, proto: &str) -> BTreeSet<u16> {
    stage
        .expose
        .iter()
        .filter(|(_, p)| p == proto)
        .map(|(n, _)| *n)
        .collect()
}

/// What holds of the Dockerfile itself, whether or not it can be run here.
#[test]
fn the_final_stage_is_a_non_root_node_with_its_data_on_a_volume() {
    let stage = dockerfile();
    assert!(
        !stage.user.is_empty() && !stage.user.starts_with("root") && !stage.user.starts_with("0"),
        "USER must be a non-root user, got {:?}",
        stage.user
    );
    let volume = stage.volumes.first().expect("a VOLUME for the data dir");
    let args = stage
        .entrypoint
        .iter()
        .chain(&stage.cmd)
        .collect::<Vec<_>>();
    let data_dir = args
        .windows(2)
        .find(|w| w[0] == "--data-dir")
        .map(|w| w[1].as_str());
    assert_eq!(
        data_dir,
        Some(volume.as_str()),
        "--data-dir is the VOLUME: {args:?}"
    );
    assert!(
        stage
            .chowned
            .iter()
            .any(|(owner, dest)| owner == &stage.user && dest == volume),
        "the VOLUME {volume} is created owned by USER {}: {:?}",
        stage.user,
        stage.chowned
    );
    assert_eq!(stage.stopsignal, "SIGTERM");
    assert_eq!(exposed(&stage, "tcp"), BTreeSet::from([8080]));
    assert_eq!(exposed(&stage, "udp"), BTreeSet::from([7946]));
    assert_eq!(
        stage.entrypoint.first().map(String::as_str),
        Some("/usr/local/bin/aurora")
    );
    assert_eq!(
        stage.healthcheck.get(..2),
        Some(&["/usr/local/bin/aurora".to_owned(), "health".to_owned()][..]),
        "the HEALTHCHECK runs the binary itself (no curl in the image)"
    );
}

#[test]
fn the_binary_starts_from_the_images_arguments_and_environment() {
    let stage = dockerfile();
    if !namespaces_allowed() {
        eprintln!(
            "SKIPPED: cannot create a network namespace here (needs root, and ip, nsenter \
             and setpriv); only the Dockerfile was checked. CI runs this as root."
        );
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let mut node = Contained::start(&stage, root.path(), &[]);
    wait_for(
        Duration::from_secs(60),
        "the image's HEALTHCHECK to pass",
        || node.probe(&stage.healthcheck).0,
    );
    let (ready, body) = node.health("http://127.0.0.1:8080/health/ready");
    assert!(ready, "/health/ready: {body}\n{}", node.log());
    assert!(body.contains("\"ready\""), "{body}");
    let tcp = node.ports("tcp");
    assert_eq!(
        tcp.iter().map(|(p, _)| *p).collect::<BTreeSet<_>>(),
        exposed(&stage, "tcp"),
        "TCP listeners {tcp:?}"
    );
    assert!(
        tcp.iter().all(|(_, lo)| !lo),
        "HTTP listens on every address: {tcp:?}"
    );
    // Not clustered: the one-member cluster's QUIC endpoint is on loopback only.
    let udp = node.ports("udp");
    assert!(udp.iter().all(|(_, lo)| *lo), "unclustered UDP {udp:?}");
    // It runs as USER, and wrote the generated admin token into the VOLUME.
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).expect("status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("Uid line");
    assert_eq!(Some(uid), stage.user.split(':').next(), "the node's uid");
    let token = root.path().join("data/admin_token");
    assert!(token.is_file(), "{}\n{}", token.display(), node.log());
    assert_eq!(node.stop(&stage.stopsignal), 0, "{}", node.log());
}

#[test]
fn a_clustered_start_listens_on_the_exposed_udp_port() {
    let stage = dockerfile();
    if !namespaces_allowed() {
        eprintln!("SKIPPED: cannot create a network namespace here (needs root).");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    // What the Helm chart adds (with the pod IP as the bind address).
    let mut node = Contained::start(
        &stage,
        root.path(),
        &[
            ("CLUSTER_ENABLED", "true"),
            ("CLUSTER_NODE_ID", "aurora-0"),
            ("CLUSTER_BIND_ADDR", "127.0.0.1"),
            ("CLUSTER_SECRET", &"5e".repeat(32)),
            ("AURORA_ADMIN_TOKEN", common::TOKEN),
        ],
    );
    wait_for(
        Duration::from_secs(60),
        "the HEALTHCHECK of a clustered node",
        || node.probe(&stage.healthcheck).0,
    );
    let (ready, body) = node.health("http://127.0.0.1:8080/health/ready");
    assert!(
        ready,
        "a founder without seeds is ready: {body}\n{}",
        node.log()
    );
    let udp: BTreeSet<u16> = node.ports("udp").iter().map(|(p, _)| *p).collect();
    assert_eq!(udp, exposed(&stage, "udp"), "UDP sockets");
    let tcp: BTreeSet<u16> = node.ports("tcp").iter().map(|(p, _)| *p).collect();
    assert_eq!(tcp, exposed(&stage, "tcp"), "TCP listeners");
    assert_eq!(node.stop(&stage.stopsignal), 0, "{}", node.log());
}

#[test]
fn env_lines_parse_like_docker_does() {
    assert_eq!(
        env_pairs(r#"A=1 B="two words" C=x\y"#),
        vec![
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "two words".to_owned()),
            ("C".to_owned(), "x\\y".to_owned()),
        ]
    );
    assert_eq!(
        env_pairs("RUST_LOG info"),
        vec![("RUST_LOG".to_owned(), "info".to_owned())]
    );
    let stage = parse("FROM a AS b\nENV X=1\nFROM c\n# c\nENV Y=2 \\\n    Z=3\nCMD [\"serve\"]\n");
    assert_eq!(stage.env.len(), 2, "only the final stage: {:?}", stage.env);
    assert_eq!(stage.cmd, vec!["serve"]);
}

/// `aurora health`'s exit codes, which Docker and Kubernetes read: 1 when nothing
/// answers (or not 200), 2 for a URL it cannot use, naming it.
#[test]
fn the_health_command_exits_1_without_an_answer_and_2_on_a_bad_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let closed = Command::new(BIN)
        .args([
            "health",
            "--url",
            &format!("http://127.0.0.1:{port}/health"),
        ])
        .output()
        .expect("run aurora health");
    assert_eq!(closed.status.code(), Some(1));
    let bad = Command::new(BIN)
        .args(["health", "--url", "https://127.0.0.1:8080/health"])
        .output()
        .expect("run aurora health");
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("https://127.0.0.1:8080/health"), "{stderr}");
}
