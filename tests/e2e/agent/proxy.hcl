# bao proxy -config=proxy.hcl (vault proxy takes the same file), run in a directory that
# holds the AppRole's role-id and secret-id files (mode 0600), as for the agent. Applications
# send their requests to the listener without a token; the proxy adds its own.
pid_file = "proxy.pid"

vault {
  # -address or BAO_ADDR / VAULT_ADDR take precedence over this.
  address = "http://127.0.0.1:8200"
}

auto_auth {
  method "approle" {
    config = {
      role_id_file_path                   = "role-id"
      secret_id_file_path                 = "secret-id"
      remove_secret_id_file_after_reading = false
    }
  }
}

api_proxy {
  use_auto_auth_token = true
}

# Caching changes what applications get: every read of litellm/creds/<role> through the proxy
# returns the same cached lease and key (one per token and request) until the lease is
# revoked through the proxy or reaches max_ttl; the proxy renews it meanwhile.
cache {
}

listener "tcp" {
  address     = "127.0.0.1:8100"
  tls_disable = true
}
