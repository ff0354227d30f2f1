# litellm-administrator: runs the mount: where LiteLLM is and the key that manages it,
# rotating that key, tidy, and the roles. It cannot issue keys itself.
path "litellm/config" {
  capabilities = ["create", "read", "update", "delete"]
}
path "litellm/rotate-root" {
  capabilities = ["update"]
}
path "litellm/tidy" {
  capabilities = ["update"]
}
path "litellm/config/auto-tidy" {
  capabilities = ["read", "update"]
}
path "litellm/roles/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
