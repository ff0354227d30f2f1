// Command peer-plugin is the benchmark's Go peer: a minimal secrets engine
// written the way HashiCorp's SDK (github.com/hashicorp/vault/sdk, MPL-2.0)
// intends, doing the same work as the Rust plugin's paths that
// scripts/bench.sh measures, so that the bench can say what a Go SDK plugin
// costs for that work under the same OpenBao (tests/bench/peers.rs).
//
// Paths:
//
//   - config: base_url and master_key of the LiteLLM proxy, kept in storage
//     and in memory.
//   - roles/<name>: models, ttl, max_ttl; reads answer from memory (as the
//     Rust plugin's role cache does), writes go to storage first.
//   - creds/<name>: POST /key/generate to LiteLLM over HTTP (keep-alive), the
//     key returned in a secret with a lease of the role's ttl; revoking the
//     lease calls POST /key/delete.
//
// It is not a LiteLLM engine for use: no WAL (a crash between /key/generate
// and the lease leaks the key until its LiteLLM expiry), no validation beyond
// the framework's field types. Served with plugin.ServeMultiplex, as both
// published Go LiteLLM plugins are.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

const (
	secretType = "litellm_key"
	version    = "v0.1.0-peer"
)

type config struct {
	BaseURL   string `json:"base_url"`
	MasterKey string `json:"master_key"`
}

type role struct {
	Models []string      `json:"models"`
	TTL    time.Duration `json:"ttl"`
	MaxTTL time.Duration `json:"max_ttl"`
}

type backend struct {
	*framework.Backend
	http *http.Client

	mu     sync.RWMutex
	config *config
	roles  map[string]*role
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func newBackend() *backend {
	b := &backend{
		http: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns:        64,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     90 * time.Second,
			},
		},
		roles: map[string]*role{},
	}
	b.Backend = &framework.Backend{
		Help:           "Benchmark peer: LiteLLM keys under leases, on HashiCorp's SDK.",
		BackendType:    logical.TypeLogical,
		RunningVersion: version,
		PathsSpecial:   &logical.Paths{SealWrapStorage: []string{"config"}},
		Invalidate:     b.invalidate,
		Paths: []*framework.Path{
			{
				Pattern: "config",
				Fields: map[string]*framework.FieldSchema{
					"base_url":   {Type: framework.TypeString},
					"master_key": {Type: framework.TypeString},
				},
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.UpdateOperation: &framework.PathOperation{Callback: b.configWrite},
				},
			},
			{
				Pattern: "roles/" + framework.GenericNameRegex("name"),
				Fields: map[string]*framework.FieldSchema{
					"name":    {Type: framework.TypeString},
					"models":  {Type: framework.TypeCommaStringSlice},
					"ttl":     {Type: framework.TypeDurationSecond},
					"max_ttl": {Type: framework.TypeDurationSecond},
				},
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.ReadOperation:   &framework.PathOperation{Callback: b.roleRead},
					logical.UpdateOperation: &framework.PathOperation{Callback: b.roleWrite},
				},
			},
			{
				Pattern: "creds/" + framework.GenericNameRegex("name"),
				Fields: map[string]*framework.FieldSchema{
					"name": {Type: framework.TypeString},
				},
				Operations: map[logical.Operation]framework.OperationHandler{
					logical.ReadOperation: &framework.PathOperation{Callback: b.credsRead},
				},
			},
		},
		Secrets: []*framework.Secret{{
			Type: secretType,
			Fields: map[string]*framework.FieldSchema{
				"key": {Type: framework.TypeString},
			},
			Renew:  b.renew,
			Revoke: b.revoke,
		}},
	}
	return b
}

func (b *backend) invalidate(_ context.Context, key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if key == "config" {
		b.config = nil
	} else if name, ok := strings.CutPrefix(key, "roles/"); ok {
		delete(b.roles, name)
	}
}

func (b *backend) configWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	c := &config{
		BaseURL:   strings.TrimRight(d.Get("base_url").(string), "/"),
		MasterKey: d.Get("master_key").(string),
	}
	if c.BaseURL == "" || c.MasterKey == "" {
		return logical.ErrorResponse("base_url and master_key are required"), nil
	}
	entry, err := logical.StorageEntryJSON("config", c)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.config = c
	b.mu.Unlock()
	return nil, nil
}

func (b *backend) getConfig(ctx context.Context, s logical.Storage) (*config, error) {
	b.mu.RLock()
	c := b.config
	b.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	entry, err := s.Get(ctx, "config")
	if err != nil || entry == nil {
		return nil, err
	}
	c = &config{}
	if err := entry.DecodeJSON(c); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.config = c
	b.mu.Unlock()
	return c, nil
}

func (b *backend) getRole(ctx context.Context, s logical.Storage, name string) (*role, error) {
	b.mu.RLock()
	r := b.roles[name]
	b.mu.RUnlock()
	if r != nil {
		return r, nil
	}
	entry, err := s.Get(ctx, "roles/"+name)
	if err != nil || entry == nil {
		return nil, err
	}
	r = &role{}
	if err := entry.DecodeJSON(r); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.roles[name] = r
	b.mu.Unlock()
	return r, nil
}

func (b *backend) roleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	r := &role{
		Models: d.Get("models").([]string),
		TTL:    time.Duration(d.Get("ttl").(int)) * time.Second,
		MaxTTL: time.Duration(d.Get("max_ttl").(int)) * time.Second,
	}
	entry, err := logical.StorageEntryJSON("roles/"+name, r)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.roles[name] = r
	b.mu.Unlock()
	return nil, nil
}

func (b *backend) roleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	r, err := b.getRole(ctx, req.Storage, d.Get("name").(string))
	if err != nil || r == nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"models":  r.Models,
		"ttl":     int64(r.TTL.Seconds()),
		"max_ttl": int64(r.MaxTTL.Seconds()),
	}}, nil
}

// call POSTs body to LiteLLM and decodes the JSON answer into out (if not nil).
func (b *backend) call(ctx context.Context, c *config, path string, body, out interface{}) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.MasterKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("LiteLLM %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("LiteLLM %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("LiteLLM %s: HTTP %d: %s", path, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

func (b *backend) credsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	r, err := b.getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return logical.ErrorResponse("unknown role %q", name), nil
	}
	c, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return logical.ErrorResponse("not configured"), nil
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, err
	}
	alias := "vault-" + name + "-" + hex.EncodeToString(suffix[:])
	ttl := r.TTL
	if ttl <= 0 {
		ttl = b.System().DefaultLeaseTTL()
	}
	var generated struct {
		Key     string `json:"key"`
		Token   string `json:"token"`
		Expires string `json:"expires"`
	}
	body := map[string]interface{}{
		"key_alias": alias,
		"duration":  fmt.Sprintf("%ds", int64(ttl.Seconds())),
		"models":    r.Models,
		"key_type":  "llm_api",
		"metadata": map[string]interface{}{
			"vault_role":       name,
			"vault_mount":      req.MountPoint,
			"vault_request_id": req.ID,
		},
	}
	if err := b.call(ctx, c, "/key/generate", body, &generated); err != nil {
		return nil, err
	}
	if generated.Key == "" || generated.Token == "" {
		return nil, errors.New("LiteLLM /key/generate: no key in the answer")
	}
	resp := b.Secret(secretType).Response(map[string]interface{}{
		"key":       generated.Key,
		"key_alias": alias,
		"token_id":  generated.Token,
		"expires":   generated.Expires,
		"role":      name,
	}, map[string]interface{}{
		"token_id": generated.Token,
		"role":     name,
	})
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = r.MaxTTL
	return resp, nil
}

func (b *backend) renew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	name, _ := req.Secret.InternalData["role"].(string)
	r, err := b.getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("role %q no longer exists", name)
	}
	resp := &logical.Response{Secret: req.Secret}
	resp.Secret.TTL = r.TTL
	resp.Secret.MaxTTL = r.MaxTTL
	return resp, nil
}

func (b *backend) revoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	token, _ := req.Secret.InternalData["token_id"].(string)
	if token == "" {
		return nil, errors.New("lease without token_id")
	}
	c, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("not configured")
	}
	return nil, b.call(ctx, c, "/key/delete", map[string]interface{}{"keys": []string{token}}, nil)
}

func main() {
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, JSONFormat: true})
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		Logger:             logger,
	}); err != nil {
		logger.Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
