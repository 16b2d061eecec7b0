//! The admin UI's browser harness: Debian's `chromium`, headless, driven through
//! `chromedriver` with the fantoccini WebDriver client.
//!
//! [`Browser::start`] finds both programs (`AURORA_CHROMIUM` / `AURORA_CHROMEDRIVER`,
//! else `/usr/bin/chromium` and `chromedriver` on the `PATH`). Where they are missing
//! a test prints `SKIPPED` and passes, unless `AURORA_REQUIRE_BROWSER=1` (set by
//! `.ci/run`, which installs them), where a missing browser fails the test.
//!
//! Every session gets its own chromedriver on a free port, in its own process group
//! (killed whole on drop, so a failing assertion leaves no chromium behind), and a
//! fresh `--user-data-dir` in a temporary directory. The window is 1280×800.
//!
//! [`Browser::finish`] fails the test on any error the page collected
//! (`window.__auroraErrors`, filled by `app.js` from uncaught errors, rejected
//! promises, `console.error` and CSP violations), then closes the session.
//!
//! With `AURORA_UI_SCREENSHOTS=<dir>` set, [`Browser::screenshot`] writes
//! `<dir>/<name>.png` (how the PNGs in `docs/img/` are made); otherwise it does nothing.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long a wait for the page waits by default.
pub const WAIT: Duration = Duration::from_secs(10);

/// The flags the issue asks for, beside `--user-data-dir` and the window size.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// A chromedriver process group, killed when dropped.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own group (process_group(0)); chromium is in it.
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session on one page origin.
pub struct Browser {
    pub client: Client,
    /// `http://host:port` of the node whose UI this session shows.
    pub base: String,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

fn program(var: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path)).filter(|p| p.exists());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in candidates {
        let candidate = Path::new(name);
        if candidate.is_absolute() {
            if candidate.exists() {
                return Some(candidate.to_owned());
            }
            continue;
        }
        for dir in std::env::split_paths(&path) {
            let full = dir.join(name);
            if full.exists() {
                return Some(full);
            }
        }
    }
    None
}

fn required() -> bool {
    std::env::var("AURORA_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Browser {
    /// Whether chromium and chromedriver are installed; prints `SKIPPED` when they are
    /// not (and panics instead under `AURORA_REQUIRE_BROWSER=1`). A test that needs a
    /// cluster asks this before starting one.
    pub fn available(test: &str) -> bool {
        Self::programs(test).is_some()
    }

    fn programs(test: &str) -> Option<(PathBuf, PathBuf)> {
        let chromium = program("AURORA_CHROMIUM", &["/usr/bin/chromium", "chromium"]);
        let chromedriver = program(
            "AURORA_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "chromedriver"],
        );
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            assert!(
                !required(),
                "{test}: AURORA_REQUIRE_BROWSER=1 but chromium or chromedriver is missing \
                 (apt-get install chromium chromium-driver)"
            );
            println!("SKIPPED {test}: chromium or chromedriver not installed");
            return None;
        };
        Some((chromium, chromedriver))
    }

    /// A session showing the node at `addr`, or `None` (after printing `SKIPPED`)
    /// when chromium or chromedriver is missing and not required.
    pub async fn start(test: &str, addr: SocketAddr) -> Option<Browser> {
        let (chromium, chromedriver) = Self::programs(test)?;
        let port = free_port();
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = Driver {
            child: command.spawn().expect("spawn chromedriver"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push("--window-size=1280,800".to_owned());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromedriver session");
        Some(Browser {
            client,
            base: format!("http://{addr}"),
            _driver: driver,
            _profile: profile,
        })
    }

    /// Points this session at another node (another origin: its session storage, so
    /// its sign-in, is separate).
    pub fn switch_to(&mut self, addr: SocketAddr) {
        self.base = format!("http://{addr}");
    }

    /// Opens `path` (e.g. `/admin/dashboard/cluster`) on this session's node.
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    /// Opens `page` and signs in with `token`; returns once the app is shown.
    pub async fn login(&self, page: &str, token: &str) {
        self.goto(page).await;
        let input = self.wait_for("[data-testid=login-token]").await;
        input.send_keys(token).await.expect("type the token");
        self.click("[data-testid=login-submit]").await;
        self.wait_for("#app:not([hidden])").await;
    }

    /// The first element matching `css`, waiting up to [`WAIT`].
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_within(css, WAIT).await
    }

    /// The first element matching `css`, waiting up to `limit`.
    pub async fn wait_for_within(&self, css: &str, limit: Duration) -> Element {
        self.client
            .wait()
            .at_most(limit)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting {limit:?} for {css}: {e}"))
    }

    /// Clicks the element matching `css` (waiting for it first).
    pub async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Every element matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Waits up to `limit` until the JavaScript expression `expr` is truthy; panics
    /// naming `what`.
    pub async fn wait_until(&self, what: &str, limit: Duration, expr: &str) {
        self.wait_until_clicking(what, limit, expr, None).await;
    }

    /// [`Browser::wait_until`], clicking `click` (e.g. the Refresh button) after each
    /// miss, at most every `CLICK_EVERY`.
    pub async fn wait_until_clicking(
        &self,
        what: &str,
        limit: Duration,
        expr: &str,
        click: Option<&str>,
    ) {
        const CLICK_EVERY: Duration = Duration::from_millis(500);
        let started = Instant::now();
        let mut clicked = Instant::now();
        let script = format!("return Boolean({expr});");
        loop {
            if self.js(&script, vec![]).await == Value::Bool(true) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "timed out after {limit:?} waiting for {what} ({expr})"
            );
            if let Some(css) = click {
                if clicked.elapsed() >= CLICK_EVERY {
                    // A disabled button (a refresh in flight) just ignores the click.
                    self.click(css).await;
                    clicked = Instant::now();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The errors the page collected (`window.__auroraErrors`); one entry saying so
    /// when the app never started.
    pub async fn errors(&self) -> Vec<String> {
        let value = self
            .js(
                "return window.__auroraErrors === undefined ? ['the app did not start (no window.__auroraErrors)'] : window.__auroraErrors.map(String);",
                vec![],
            )
            .await;
        serde_json::from_value(value).unwrap_or_default()
    }

    /// Panics if the page collected any error.
    pub async fn assert_no_errors(&self) {
        let errors = self.errors().await;
        assert!(errors.is_empty(), "browser errors: {errors:#?}");
    }

    /// Panics if a visible form control has no label (a `<label for>`, a wrapping
    /// `<label>` or `aria-label`) or a visible button has no text or `aria-label`.
    pub async fn assert_labelled(&self) {
        let unlabelled = self
            .js(
                "const shown = (e) => e.offsetParent !== null; \
                 const controls = [...document.querySelectorAll('input, select, textarea')] \
                   .filter((e) => e.type !== 'hidden' && shown(e) && !e.labels.length && !e.getAttribute('aria-label')); \
                 const buttons = [...document.querySelectorAll('button')] \
                   .filter((b) => shown(b) && !b.textContent.trim() && !b.getAttribute('aria-label')); \
                 return [...controls, ...buttons].map((e) => e.outerHTML.slice(0, 120));",
                vec![],
            )
            .await;
        let unlabelled: Vec<String> = serde_json::from_value(unlabelled).unwrap_or_default();
        assert!(
            unlabelled.is_empty(),
            "controls without a label: {unlabelled:#?}"
        );
    }

    /// With `AURORA_UI_SCREENSHOTS=<dir>`, writes the page as `<dir>/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("AURORA_UI_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(dir);
        // Relative to the workspace root (cargo runs tests in the package directory).
        let dir = if dir.is_relative() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)
        } else {
            dir
        };
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        println!("screenshot: {}", path.display());
    }

    /// Checks that the page collected no error, then ends the session.
    pub async fn finish(self) {
        self.assert_no_errors().await;
        let _ = self.client.close().await;
    }
}
