# bao agent -config=agent.hcl (vault agent takes the same file), run in a directory that
# holds the AppRole's role-id and secret-id files (mode 0600). Relative paths are relative to
# the agent's working directory. The AppRole's token policy is litellm-application.
pid_file = "agent.pid"

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

template_config {
  # Stop (non-zero) instead of serving a stale key when OpenBao keeps failing.
  exit_on_retry_failure = true
}

# The key alone, for an application that reads its LiteLLM key from a file. The agent renews
# the lease while it can and renders a new key when the lease reaches the role's max_ttl.
template {
  contents    = "{{ with secret \"litellm/creds/research\" }}{{ .Data.key }}{{ end }}"
  destination = "litellm-key"
  perms       = "0600"
}
