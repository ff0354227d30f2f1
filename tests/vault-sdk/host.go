// Package vaultsdk hosts the Rust plugin with HashiCorp's own host-side code: the plugin
// runner, go-plugin's client (handshake, AutoMTLS, checksum), plugin.NewBackendV5 and the
// SDK's storage and system-view servers over the go-plugin broker.
//
// Vault keeps the remaining glue (sharing one process between mounts, tagging each call with
// the mount's multiplex_id) in vault/plugincatalog, which is BUSL-licensed; this file
// re-implements that glue from its documented behaviour, nothing more. Only the MPL modules
// github.com/hashicorp/vault/sdk and github.com/hashicorp/go-plugin are imported.
package vaultsdk

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// VaultVersion is what the host reports as its version (VAULT_VERSION in the plugin's env).
const VaultVersion = "1.21.0"

// PluginName is the name the plugin is registered under in the host's "catalog".
const PluginName = "litellm"

// Host is one registered plugin and the one process that serves all its mounts, as Vault's
// plugin catalog keeps it for a plugin that supports multiplexing.
type Host struct {
	// Runner is the catalog entry: command, sha256 and the catalog's env.
	Runner *pluginutil.PluginRunner
	// Logger receives go-plugin's and the plugin's (stderr) log lines.
	Logger hclog.Logger

	mu          sync.Mutex
	client      *goplugin.Client
	conn        *grpc.ClientConn
	rpc         goplugin.ClientProtocol
	multiplexed bool
	open        int // connections handed out and not closed yet
	launches    int
}

// NewHost registers the plugin binary at bin with the catalog env catalogEnv (KEY=VALUE).
// Like `vault plugin register -sha256=...`, it records the binary's SHA-256, which go-plugin
// checks before every launch.
func NewHost(bin string, catalogEnv []string, logger hclog.Logger) (*Host, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("plugin binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return &Host{
		Runner: &pluginutil.PluginRunner{
			Name:    PluginName,
			Type:    consts.PluginTypeSecrets,
			Command: abs,
			Env:     catalogEnv,
			Sha256:  h.Sum(nil),
		},
		Logger: logger,
	}, nil
}

// Catalog is what Vault hands plugin.NewBackendV5 as its LookRunnerUtil: the mount's
// system view, plus catalog lookup and process management.
type Catalog struct {
	logical.StaticSystemView
	Host *Host
}

// LookupPlugin returns the registered runner.
func (c Catalog) LookupPlugin(ctx context.Context, name string, t consts.PluginType) (*pluginutil.PluginRunner, error) {
	return c.LookupPluginVersion(ctx, name, t, "")
}

// LookupPluginVersion returns the registered runner.
func (c Catalog) LookupPluginVersion(_ context.Context, name string, t consts.PluginType, _ string) (*pluginutil.PluginRunner, error) {
	if name != c.Host.Runner.Name || t != c.Host.Runner.Type {
		return nil, fmt.Errorf("no plugin %q of type %s in the catalog", name, t)
	}
	return c.Host.Runner, nil
}

// NewPluginClient returns a connection to the plugin for one mount, launching the process
// when none is running (or when it does not multiplex).
func (c Catalog) NewPluginClient(ctx context.Context, config pluginutil.PluginClientConfig) (pluginutil.PluginClient, error) {
	return c.Host.newPluginClient(ctx, config)
}

func (h *Host) newPluginClient(ctx context.Context, config pluginutil.PluginClientConfig) (pluginutil.PluginClient, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client != nil && !h.client.Exited() && !h.multiplexed && h.open > 0 {
		return nil, errors.New("the plugin does not multiplex; this harness expects it to")
	}
	if h.client == nil || h.client.Exited() {
		if err := h.launch(ctx, config); err != nil {
			return nil, err
		}
	}
	id, err := multiplexID()
	if err != nil {
		return nil, err
	}
	h.open++
	return &pluginClient{
		ClientProtocol: h.rpc,
		host:           h,
		conn:           &muxConn{ClientConn: h.conn, id: id},
		id:             id,
	}, nil
}

// launch starts the process the way Vault's catalog does for a non-container plugin: the
// runner's RunConfig (env layering, VAULT_* variables, SecureConfig checksum, AutoMTLS) and
// go-plugin's client, then asks the plugin whether it multiplexes.
func (h *Host) launch(ctx context.Context, config pluginutil.PluginClientConfig) error {
	client, err := h.Runner.RunConfig(ctx,
		pluginutil.Runner(config.Wrapper),
		pluginutil.PluginSets(config.PluginSets),
		pluginutil.HandshakeConfig(config.HandshakeConfig),
		pluginutil.Logger(config.Logger),
		pluginutil.MetadataMode(config.IsMetadataMode),
		pluginutil.AutoMTLS(config.AutoMTLS),
		pluginutil.MLock(config.MLock),
	)
	if err != nil {
		return err
	}
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return err
	}
	grpcClient, ok := rpc.(*goplugin.GRPCClient)
	if !ok {
		client.Kill()
		return fmt.Errorf("plugin speaks %T, not gRPC", rpc)
	}
	muxed, err := pluginutil.MultiplexingSupported(ctx, grpcClient.Conn, config.Name)
	if err != nil {
		client.Kill()
		return err
	}
	h.client, h.rpc, h.conn, h.multiplexed = client, rpc, grpcClient.Conn, muxed
	h.launches++
	return nil
}

// Multiplexed reports what the plugin answered to MultiplexingSupport.
func (h *Host) Multiplexed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.multiplexed
}

// Launches counts the processes started so far.
func (h *Host) Launches() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.launches
}

// Client is the go-plugin client of the running process (nil before the first mount).
func (h *Host) Client() *goplugin.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.client
}

// Pid is the plugin process's id, 0 when none runs.
func (h *Host) Pid() int {
	c := h.Client()
	if c == nil {
		return 0
	}
	if rc := c.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Kill stops the process (go-plugin: graceful shutdown first, then SIGKILL after 2 s).
func (h *Host) Kill() {
	if c := h.Client(); c != nil {
		c.Kill()
	}
}

func (h *Host) release() {
	h.mu.Lock()
	h.open--
	last := h.open == 0
	client := h.client
	h.mu.Unlock()
	if last && client != nil {
		client.Kill()
	}
}

// pluginClient is one mount's pluginutil.PluginClient: the process's go-plugin protocol
// client, with a connection that tags every call with the mount's multiplex_id.
type pluginClient struct {
	goplugin.ClientProtocol
	host *Host
	conn *muxConn
	id   string
	once sync.Once
}

func (p *pluginClient) Conn() grpc.ClientConnInterface { return p.conn }

// Reload is what Vault calls on a plugin reload; the harness never reloads.
func (p *pluginClient) Reload() error { return errors.New("reload is not supported by this harness") }

// Close ends this mount's use of the process; the last one stops it, as in Vault.
func (p *pluginClient) Close() error {
	p.once.Do(p.host.release)
	return nil
}

// muxConn adds the multiplex_id metadata to every call, as Vault's catalog does.
type muxConn struct {
	*grpc.ClientConn
	id string
}

func (c *muxConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	ctx = metadata.AppendToOutgoingContext(ctx, pluginutil.MultiplexingCtxKey, c.id)
	return c.ClientConn.Invoke(ctx, method, args, reply, opts...)
}

func (c *muxConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, pluginutil.MultiplexingCtxKey, c.id)
	return c.ClientConn.NewStream(ctx, desc, method, opts...)
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// multiplexID is 10 random base62 characters, the shape of Vault's ids.
func multiplexID() (string, error) {
	var b strings.Builder
	for range 10 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(base62))))
		if err != nil {
			return "", err
		}
		b.WriteByte(base62[n.Int64()])
	}
	return b.String(), nil
}

// MountOptions are a mount's tuning and identity.
type MountOptions struct {
	// Path is the mount path with its trailing slash, e.g. "litellm/".
	Path string
	// DefaultLeaseTTL and MaxLeaseTTL are the mount's lease limits (system view).
	DefaultLeaseTTL, MaxLeaseTTL time.Duration
}

// Mount is one mounted instance of the engine.
type Mount struct {
	Options  MountOptions
	Backend  logical.Backend
	Storage  *RecordingStorage
	System   logical.StaticSystemView
	Accessor string
	UUID     string
}

// Mount creates a backend for a new mount as Vault core does for an external plugin:
// plugin.NewBackendV5 with the mount's system view, then Setup (storage and system view served
// by the SDK over the broker) and Initialize.
func (h *Host) Mount(ctx context.Context, opts MountOptions) (*Mount, error) {
	id, err := multiplexID()
	if err != nil {
		return nil, err
	}
	sys := logical.StaticSystemView{
		DefaultLeaseTTLVal: opts.DefaultLeaseTTL,
		MaxLeaseTTLVal:     opts.MaxLeaseTTL,
		VersionString:      VaultVersion,
		PluginEnvironment:  &logical.PluginEnvironment{VaultVersion: VaultVersion},
		ClusterUUID:        "00000000-0000-4000-8000-000000000001",
	}
	m := &Mount{
		Options:  opts,
		Storage:  NewRecordingStorage(),
		System:   sys,
		Accessor: "litellm_" + strings.ToLower(id[:8]),
		UUID:     "uuid-" + id,
	}
	conf := &logical.BackendConfig{
		StorageView: m.Storage,
		Logger:      h.Logger.Named(opts.Path),
		System:      sys,
		BackendUUID: m.UUID,
		Config: map[string]string{
			"plugin_name":    PluginName,
			"plugin_type":    consts.PluginTypeSecrets.String(),
			"plugin_version": "",
		},
	}
	b, err := plugin.NewBackendV5(ctx, PluginName, consts.PluginTypeSecrets, "", Catalog{StaticSystemView: sys, Host: h}, conf)
	if err != nil {
		return nil, err
	}
	if err := b.Setup(ctx, conf); err != nil {
		b.Cleanup(ctx)
		return nil, fmt.Errorf("setup: %w", err)
	}
	if err := b.Initialize(ctx, &logical.InitializationRequest{Storage: m.Storage}); err != nil {
		b.Cleanup(ctx)
		return nil, fmt.Errorf("initialize: %w", err)
	}
	m.Backend = b
	return m, nil
}

// Request builds a request the way Vault's router hands it to a backend: path relative to
// the mount, the mount's storage, point, type and accessor.
func (m *Mount) Request(op logical.Operation, path string, data map[string]any) *logical.Request {
	id, _ := multiplexID()
	return &logical.Request{
		ID:            "req-" + id,
		Operation:     op,
		Path:          path,
		Data:          data,
		Storage:       m.Storage,
		MountPoint:    m.Options.Path,
		MountType:     PluginName,
		MountAccessor: m.Accessor,
		ClientToken:   "hvs.harness-" + id,
		DisplayName:   "token-harness",
		Connection:    &logical.Connection{RemoteAddr: "127.0.0.1"},
	}
}

// Handle sends one request to the backend.
func (m *Mount) Handle(ctx context.Context, op logical.Operation, path string, data map[string]any) (*logical.Request, *logical.Response, error) {
	req := m.Request(op, path, data)
	resp, err := m.Backend.HandleRequest(ctx, req)
	return req, resp, err
}
