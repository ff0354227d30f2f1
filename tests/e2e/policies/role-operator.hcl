# litellm-role-operator: defines what keys may do (roles), and nothing else: no config,
# no keys, no leases.
path "litellm/roles/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
