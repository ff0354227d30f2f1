//! A LiteLLM server under test for the client scenarios and the fake's conformance: the fake,
//! or the real proxy. Each tier's `targets()` says which.

use std::time::Duration;

use serde_json::{Value, json};
use vault_plugin_secrets_litellm::engine::client::{
    Client, ClientConfig, GenerateKeyRequest, duration_string,
};

use super::RealLiteLlm;
use super::fake_litellm::FakeLiteLlm;

/// The master key of the fake targets.
pub const MASTER: &str = "sk-fake-master-key-0123456789";

/// A server under test.
pub struct Target {
    pub name: &'static str,
    pub url: String,
    pub master_key: String,
    /// The fake (kept alive for the test); `None` for the real proxy.
    pub fake: Option<FakeLiteLlm>,
}

impl Target {
    pub fn config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.url.clone(), self.master_key.clone());
        cfg.request_timeout = Duration::from_secs(10);
        cfg
    }

    pub fn client(&self) -> Client {
        Client::new(&self.config()).expect("client")
    }

    /// Lets a key with `expires` in the past by `secs` be seen as expired.
    /// (For the real proxy this sleeps: its clock cannot be moved.)
    pub async fn pass_time(&self, secs: u64) {
        match &self.fake {
            Some(fake) => fake.advance_clock(Duration::from_secs(secs)),
            None => tokio::time::sleep(Duration::from_secs(secs)).await,
        }
    }
}

impl Target {
    /// A fresh fake.
    pub fn fake() -> Target {
        let fake = FakeLiteLlm::start(MASTER).expect("start fake");
        Target {
            name: "fake",
            url: fake.url(),
            master_key: MASTER.to_owned(),
            fake: Some(fake),
        }
    }

    /// The real proxy.
    pub fn real(litellm: &RealLiteLlm) -> Target {
        Target {
            name: "real",
            url: litellm.url.clone(),
            master_key: litellm.master_key.clone(),
            fake: None,
        }
    }
}

pub fn unique_alias(tag: &str) -> String {
    format!("scratch-client-{tag}-{}", uuid::Uuid::new_v4().simple())
}

/// `GET /v1/models` with a virtual key: (status, model ids or error type).
pub async fn models_with(url: &str, key: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .expect("models request");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status == 200 {
        let mut ids: Vec<String> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        (status, json!(ids))
    } else {
        (status, body["error"]["type"].clone())
    }
}

/// A LiteLLM error body.
pub fn litellm(message: &str, kind: &str, param: Value, code: u16) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code.to_string()}})
}

/// A fresh fake and an admin client of it with `timeout`.
pub fn fake_and_client(timeout: Duration) -> (FakeLiteLlm, Client) {
    let fake = FakeLiteLlm::start(MASTER).expect("start fake");
    let mut cfg = ClientConfig::new(fake.url(), MASTER);
    cfg.request_timeout = timeout;
    let client = Client::new(&cfg).expect("client");
    (fake, client)
}

/// A generate request with a unique alias and a 60 s duration.
pub fn gen_req(tag: &str) -> GenerateKeyRequest {
    GenerateKeyRequest {
        key_alias: unique_alias(tag),
        duration: Some(duration_string(60)),
        ..Default::default()
    }
}
