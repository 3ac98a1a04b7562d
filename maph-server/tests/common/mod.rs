//! A small HTTP client for the tests: every call returns status, headers and body,
//! whatever the status (errors are what many tests are about).

#![allow(dead_code)] // each test binary uses its own part of it

use serde_json::Value;

pub struct Api {
    pub base: String,
    agent: ureq::Agent,
    pub token: Option<String>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Asserts the reply is `status` with a JSON `{"error": ...}` containing `text`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, text: &str) {
        assert_eq!(self.status, status, "{self:?} {:?}", String::from_utf8_lossy(&self.body));
        assert!(self.content_type.starts_with("application/json"), "error not JSON: {self:?}");
        let message = self.json()["error"].as_str().unwrap_or_else(|| panic!("no error field: {self:?}")).to_string();
        assert!(message.contains(text), "error {message:?} does not contain {text:?}");
    }
}

impl Api {
    pub fn new(base: String) -> Api {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Api { base, agent, token: None }
    }

    pub fn with_token(mut self, token: &str) -> Api {
        self.token = Some(token.to_string());
        self
    }

    pub fn get(&self, path: &str) -> Reply {
        self.run("GET", path, None, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.run("GET", path, None, headers)
    }

    pub fn put(&self, path: &str, body: &[u8]) -> Reply {
        self.run("PUT", path, Some(body), &[])
    }

    pub fn post(&self, path: &str) -> Reply {
        self.run("POST", path, None, &[])
    }

    pub fn post_body(&self, path: &str, body: &[u8]) -> Reply {
        self.run("POST", path, Some(body), &[])
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.run("DELETE", path, None, &[])
    }

    pub fn run(&self, method: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Reply {
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.map(<[u8]>::to_vec).unwrap_or_default()).expect("a valid request");
        let mut response = self.agent.run(request).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect::<Vec<_>>();
        let content_type =
            headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.clone()).unwrap_or_default();
        let body = response.body_mut().with_config().limit(64 << 20).read_to_vec().expect("read the body");
        Reply { status, content_type, headers, body }
    }
}

/// Asserts that no rebuild (growth, optimize) left a temporary file in `dir`.
#[track_caller]
pub fn assert_no_rebuild_left(dir: &std::path::Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("rebuilding"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
