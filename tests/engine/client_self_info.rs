//! The client's `self_info`, which rotate-root relies on: the master key has no row of its
//! own, a virtual key does. Run against every target of the tier ([`crate::targets`]); the
//! end-to-end tier compiles this same file.

use serde_json::json;
use vault_plugin_secrets_litellm::engine::client::GenerateKeyRequest;

use crate::support::{admin_client, unique};
use crate::targets;

#[tokio::test]
async fn self_info_tells_the_master_key_from_virtual_keys() {
    for t in targets() {
        let (url, is_fake) = (t.url.clone(), t.fake.is_some());
        let master = admin_client(&url, &t.master_key);
        assert_eq!(master.self_info().await.unwrap(), None, "{url}: master key");

        let alias = format!("vault-rr-client-{}", unique("c"));
        let mut extra = serde_json::Map::new();
        extra.insert("allowed_routes".into(), json!(["/key/info", "/key/list"]));
        let key = master
            .generate_with(
                &GenerateKeyRequest {
                    key_alias: alias.clone(),
                    duration: Some("120s".into()),
                    ..GenerateKeyRequest::default()
                },
                &extra,
            )
            .await
            .unwrap();
        let own = admin_client(&url, &key.key).self_info().await;
        master
            .set_alias(&key.token, &format!("{alias}-renamed"))
            .await
            .unwrap();
        let renamed = master.info(&key.token).await;
        master
            .delete_keys(std::slice::from_ref(&key.token))
            .await
            .unwrap();

        let own = own.unwrap().expect("a virtual key has its own row");
        assert_eq!(own.token, key.token, "{url}");
        assert_eq!(own.info.key_alias.as_deref(), Some(alias.as_str()));
        assert!(own.info.expires_at.is_some() && own.created_at_time.is_some());
        if !is_fake {
            // The fake does not model allowed_routes; the real proxy stores them.
            assert_eq!(own.allowed_routes, vec!["/key/info", "/key/list"], "{url}");
        }
        assert_eq!(
            renamed.unwrap().and_then(|i| i.key_alias),
            Some(format!("{alias}-renamed"))
        );
    }
}
