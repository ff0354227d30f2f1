# litellm-application: an application that uses the keys of one role (here "research").
# Issue a key (read, or update to pass a shorter ttl).
path "litellm/creds/research" {
  capabilities = ["read", "update"]
}

# Renew and revoke the leases of that role's keys, and no others: with the lease id in the
# body (Vault Agent, the Vault Secrets Operator, `bao lease renew`) ...
path "sys/leases/renew" {
  capabilities = ["update"]
  allowed_parameters = {
    "lease_id"  = ["litellm/creds/research/*"]
    "increment" = []
  }
}
path "sys/leases/revoke" {
  capabilities = ["update"]
  allowed_parameters = {
    "lease_id" = ["litellm/creds/research/*"]
    "sync"     = []
  }
}

# ... or in the URL (`bao lease revoke`).
path "sys/leases/renew/litellm/creds/research/*" {
  capabilities = ["update"]
}
path "sys/leases/revoke/litellm/creds/research/*" {
  capabilities = ["update"]
}
