package vaultsdk

import (
	"github.com/hashicorp/go-multierror"
	"github.com/hashicorp/vault/sdk/logical"
)

// VaultHTTPStatus is the HTTP status Vault answers a request with, given what the backend
// returned: core collects backend errors in a multierror, the HTTP layer takes the status and
// error from logical.RespondErrorCommon and lets logical.AdjustErrorStatusCode override it
// (a logical.HTTPCodedError keeps its own code). 0 means "a normal reply" (200/204).
// The returned error is the one Vault would show.
func VaultHTTPStatus(req *logical.Request, resp *logical.Response, err error) (int, error) {
	if err != nil {
		err = multierror.Append(nil, err)
	}
	status, shown := logical.RespondErrorCommon(req, resp, err)
	if status == 0 {
		return 0, nil
	}
	logical.AdjustErrorStatusCode(&status, shown)
	return status, shown
}
