//! The dashboard at `/`, driven in real headless Chromium through chromedriver
//! (WebDriver) against a real server, as a person would use it: create a
//! store, set and read a key through the form, import 1,000 JSON lines, watch
//! the counts and the chart change, browse keys by prefix, delete, optimize;
//! and on a server with a token, read without it and be asked for it before a
//! write. Chromium resolves no host but loopback, so the page must work with
//! nothing from outside; the test checks it fetched nothing from elsewhere.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test installs
//! them). Without them the tests print why and skip, except under CI (`CI` set),
//! where a missing browser fails.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Api;
use fantoccini::{Client, ClientBuilder, Locator};
use maph_server::{ServerConfig, ServerHandle};
use serde_json::{json, Value};

/// Generous bound for the page to reach a state; only a stuck page fails it.
const PATIENCE: Duration = Duration::from_secs(90);

/// Where the browser and its driver are, or why the test cannot run.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let driver =
        ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].into_iter().map(PathBuf::from).find(|p| p.exists());
    let chromium =
        ["/usr/lib/chromium/chromium", "/usr/bin/chromium"].into_iter().map(PathBuf::from).find(|p| p.exists());
    match (driver, chromium) {
        (Some(driver), Some(chromium)) => Some((driver, chromium)),
        _ => {
            let why = "chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver; \
                       scripts/test installs them)";
            assert!(std::env::var_os("CI").is_none(), "CI must run the dashboard tests: {why}");
            println!("skipping the dashboard test: {why}");
            None
        }
    }
}

/// A chromedriver on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver on a port that was free a moment ago; another
    /// program may take it in between, so a failed start is tried again.
    fn start(driver: &Path) -> Driver {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Driver::try_start(driver) {
                Ok(started) => return started,
                Err(why) => failures.push(why),
            }
        }
        panic!("chromedriver did not start: {failures:?}");
    }

    fn try_start(driver: &Path) -> Result<Driver, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", driver.display()))?;
        // It says so once it listens; the rest of its output is drained so it
        // never blocks on a full pipe.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut said = Vec::new();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            let ready = line.contains("started successfully");
            said.push(line);
            if ready {
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(Driver { child, url: format!("http://127.0.0.1:{port}") });
            }
        }
        let _ = child.kill();
        let status = child.wait();
        Err(format!("it ended without listening ({status:?}): {said:?}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session: its own empty profile, no network but
/// loopback, none of the background connections the browser makes on its own.
struct Page {
    client: Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Page {
    async fn open(driver: &Driver, chromium: &Path, base: &str) -> Page {
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1440,1200".into(),
            // Offline: every name but loopback fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&driver.url)
            .await
            .expect("open a Chromium session");
        client.goto(&format!("{base}/")).await.unwrap();
        Page { client, base: base.to_string(), _profile: profile }
    }

    /// Waits until the JavaScript expression `condition` is true; fails with
    /// `what` (and the page's visible text) past the deadline.
    async fn wait_until(&self, condition: &str, what: &str) {
        let script = format!("return Boolean({condition});");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.client.execute(&script, vec![]).await.unwrap() == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body.innerText").await;
                panic!("the page never showed {what} ({condition}); it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // the polling period of the condition
        }
    }

    async fn eval(&self, expression: &str) -> Value {
        self.client.execute(&format!("return {expression};"), vec![]).await.unwrap()
    }

    async fn click(&self, selector: &str) {
        self.client.find(Locator::Css(selector)).await.unwrap().click().await.unwrap();
    }

    async fn type_into(&self, selector: &str, text: &str) {
        let field = self.client.find(Locator::Css(selector)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Whether the text of `selector` contains `text`, as a JS expression.
    fn shows(selector: &str, text: &str) -> String {
        format!("(document.querySelector({}) || {{}}).textContent?.includes({})", json!(selector), json!(text))
    }

    /// Every resource the page loaded came from the server itself.
    async fn assert_nothing_fetched_from_elsewhere(&self) {
        let loaded = self.eval("performance.getEntriesByType('resource').map(e => e.name)").await;
        let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
        assert!(!loaded.is_empty());
        for url in &loaded {
            assert!(url.starts_with(&format!("{}/", self.base)), "the page fetched {url} from elsewhere");
        }
        let references = self
            .eval("[...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href'))")
            .await;
        for reference in serde_json::from_value::<Vec<String>>(references).unwrap() {
            assert!(reference.starts_with('/') || reference.starts_with("data:"), "the page refers to {reference}");
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_person_creates_fills_browses_and_optimizes_a_store_in_the_dashboard() {
    let Some((driver_path, chromium)) = browser() else { return };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0)).unwrap();
    let api = Api::new(server.url());
    let index = api.get("/");
    assert_eq!(index.status, 200);
    assert!(index.content_type.starts_with("text/html"));
    assert!(index.header("content-security-policy").unwrap().contains("default-src 'none'"), "{index:?}");
    let driver = Driver::start(&driver_path);

    runtime().block_on(async {
        let page = Page::open(&driver, &chromium, &server.url()).await;
        page.wait_until(&Page::shows("#status-line", "0 stores"), "the server status").await;
        page.wait_until("!document.getElementById('no-stores').classList.contains('hidden')", "no stores yet").await;

        // Create a store through the form.
        page.type_into("#create-name", "people").await;
        page.click("#create-button").await;
        page.wait_until(&Page::shows("#selected-store", "people"), "the new store selected").await;
        page.wait_until("document.querySelector('tr[data-store=\"people\"]')", "the store in the list").await;
        assert_eq!(api.get("/stores/people/stats").json()["slots"], 10_000);

        // Set a key, then read it back through the form.
        page.type_into("#key-input", "user:1").await;
        page.type_into("#value-input", "Ada Lovelace").await;
        page.click("#set-button").await;
        page.wait_until(&Page::shows("#key-result", "key created"), "the key created").await;
        assert_eq!(api.get("/stores/people/keys/user:1").json()["value"], "Ada Lovelace");
        page.type_into("#value-input", "").await;
        page.click("#get-button").await;
        page.wait_until("document.getElementById('value-input').value === 'Ada Lovelace'", "the value read back").await;

        // Import 1,000 JSON lines (v3's {"input", "output"} form), pasted in.
        let lines: Vec<String> = (0..1000)
            .map(|i| json!({"input": format!("item:{i:04}"), "output": format!("thing {i}")}).to_string())
            .collect();
        page.client
            .execute("document.getElementById('import-text').value = arguments[0];", vec![json!(lines.join("\n"))])
            .await
            .unwrap();
        page.click("#import-button").await;
        page.wait_until(&Page::shows("#import-status", "imported 1000 keys (1000 new, 0 updated)"), "the import done")
            .await;
        assert_eq!(page.eval("document.getElementById('import-progress').value").await, json!(1000));
        assert_eq!(api.get("/stores/people/keys/item:0999").json()["value"], "thing 999");

        // The counts and the chart follow.
        page.wait_until(&Page::shows("tr[data-store=\"people\"] .keys", "1,001"), "1,001 keys in the list").await;
        let wrote = "document.getElementById('ops-writes').getAttribute('points').split(' ')\
                     .some(p => p && parseFloat(p.split(',')[1]) < 59)";
        page.wait_until(wrote, "writes in the ops/s chart").await;
        page.wait_until("!document.getElementById('ops-now').textContent.startsWith('0 ')", "a rate").await;

        // Browse keys by prefix, page through them, open one.
        page.type_into("#prefix-input", "item:099").await;
        page.click("#search-button").await;
        page.wait_until("document.querySelectorAll('#keys-list tr').length === 10", "ten keys item:0990..0999").await;
        let listed =
            page.eval("[...document.querySelectorAll('#keys-list td.key')].map(td => td.textContent).sort()").await;
        let expected: Vec<String> = (990..1000).map(|i| format!("item:{i:04}")).collect();
        assert_eq!(listed, json!(expected));
        page.type_into("#prefix-input", "item:").await;
        page.click("#search-button").await;
        page.wait_until("document.querySelectorAll('#keys-list tr').length === 20", "a first page of 20").await;
        page.wait_until("!document.getElementById('next-page').disabled", "a next page").await;
        page.click("#next-page").await;
        page.wait_until(&Page::shows("#page-info", "page 2: 20 keys"), "page 2").await;
        page.click("#keys-list tr:first-child td.key").await;
        page.wait_until(
            "document.getElementById('value-input').value.startsWith('thing ')",
            "the clicked key's value in the form",
        )
        .await;

        // Delete a key.
        page.type_into("#key-input", "user:1").await;
        page.click("#delete-button").await;
        page.wait_until(&Page::shows("#key-result", "\"user:1\" deleted"), "the key deleted").await;
        api.get("/stores/people/keys/user:1").assert_error(404, "Key not found");
        page.wait_until(&Page::shows("tr[data-store=\"people\"] .keys", "1,000"), "1,000 keys in the list").await;

        // Optimize asks first; cancelling changes nothing.
        page.click("#optimize-button").await;
        page.wait_until("document.getElementById('confirm-dialog').open", "the confirmation").await;
        page.click("#confirm-no").await;
        page.wait_until(&Page::shows("#optimize-status", "cancelled"), "the cancellation").await;
        assert_eq!(api.get("/stores/people/stats").json()["writer"]["optimizations"], 0);
        page.click("#optimize-button").await;
        page.wait_until("document.getElementById('confirm-dialog').open", "the confirmation").await;
        page.click("#confirm-yes").await;
        page.wait_until(&Page::shows("#optimize-status", "optimized: 1000 keys, 10000 → 2500 slots"), "optimized")
            .await;
        page.wait_until(&Page::shows("tr[data-store=\"people\"] .slots", "2,500"), "the new size in the list").await;
        assert_eq!(api.get("/stores/people/keys/item:0500").json()["value"], "thing 500");

        page.assert_nothing_fetched_from_elsewhere().await;
        // A second store, written by another client, for the screenshot.
        assert_eq!(api.post("/stores/sessions?slots=1000").status, 201);
        let pairs: Vec<Value> = (0..420).map(|i| json!({"key": format!("session:{i}"), "value": "active"})).collect();
        let body = json!({"operation": "mset", "pairs": pairs}).to_string();
        assert_eq!(api.post_body("/stores/sessions/batch", body.as_bytes()).status, 200);
        page.wait_until("document.querySelector('tr[data-store=\"sessions\"]')", "the second store").await;
        page.click("tr[data-store=\"people\"]").await;
        page.wait_until("document.querySelectorAll('#keys-list tr').length === 20", "the key list").await;
        page.client.execute("window.scrollTo(0, 0);", vec![]).await.unwrap();
        let shot = page.client.screenshot().await.unwrap();
        let target = std::env::var_os("MAPH_DASHBOARD_SCREENSHOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("maph-dashboard.png"));
        std::fs::write(&target, shot).unwrap();
        println!("screenshot: {}", target.display());
        page.client.close().await.unwrap();
    });
    println!("the dashboard test took {:.1} s", started.elapsed().as_secs_f64());
    server.stop().unwrap();
}

#[test]
fn reading_needs_no_token_and_a_write_asks_for_it() {
    let Some((driver_path, chromium)) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = ServerHandle::start(ServerConfig::new(dir.path()).port(0).token(Some("s3cret".into()))).unwrap();
    let owner = Api::new(server.url()).with_token("s3cret");
    assert_eq!(owner.post("/stores/guarded").status, 201);
    assert_eq!(owner.put("/stores/guarded/keys/motto", b"read freely").status, 201);
    let driver = Driver::start(&driver_path);

    runtime().block_on(async {
        let page = Page::open(&driver, &chromium, &server.url()).await;
        page.wait_until(&Page::shows("#status-line", "writes need a token"), "the token notice").await;
        page.click("tr[data-store=\"guarded\"]").await;
        page.wait_until("document.querySelectorAll('#keys-list tr').length === 1", "the key list, without a token")
            .await;
        page.type_into("#key-input", "motto").await;
        page.click("#get-button").await;
        page.wait_until("document.getElementById('value-input').value === 'read freely'", "the value").await;
        assert_eq!(page.eval("document.getElementById('token-dialog').open").await, json!(false), "a read asked");

        // A write asks for the token first; cancelling writes nothing.
        page.type_into("#value-input", "changed").await;
        page.click("#set-button").await;
        page.wait_until("document.getElementById('token-dialog').open", "the token dialog").await;
        page.click("#token-cancel").await;
        page.wait_until(&Page::shows("#key-result", "no token given"), "the refusal").await;
        assert_eq!(owner.get("/stores/guarded/keys/motto").json()["value"], "read freely");

        // A wrong token is refused by the server and asked for again.
        page.click("#set-button").await;
        page.wait_until("document.getElementById('token-dialog').open", "the token dialog").await;
        page.type_into("#token-input", "guess").await;
        page.click("#token-save").await;
        page.wait_until("document.getElementById('token-dialog').open", "the token dialog again").await;
        page.type_into("#token-input", "s3cret").await;
        page.click("#token-save").await;
        page.wait_until(&Page::shows("#key-result", "key updated"), "the write done").await;
        assert_eq!(owner.get("/stores/guarded/keys/motto").json()["value"], "changed");
        page.wait_until(&Page::shows("#token-button", "token set"), "the token kept for the session").await;
        page.assert_nothing_fetched_from_elsewhere().await;
        page.client.close().await.unwrap();
    });
    server.stop().unwrap();
}
