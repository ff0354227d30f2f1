package vaultsdk

import (
	"context"
	"sort"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// RecordingStorage is the SDK's logical.InmemStorage, counting the calls the plugin makes
// through the SDK's storage server. logical.Storage has exactly the four operations
// HashiCorp's host serves over gRPC (List, Get, Put, Delete); OpenBao's additions (ListPage,
// transactions) have no server on this host, so a plugin that needed them would fail here.
type RecordingStorage struct {
	logical.InmemStorage

	mu    sync.Mutex
	calls map[string]int
}

var _ logical.Storage = (*RecordingStorage)(nil)

// NewRecordingStorage returns empty storage.
func NewRecordingStorage() *RecordingStorage {
	return &RecordingStorage{calls: map[string]int{}}
}

func (s *RecordingStorage) count(op string) {
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
}

// List lists keys under prefix, one level deep.
func (s *RecordingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	s.count("List")
	return s.InmemStorage.List(ctx, prefix)
}

// Get reads an entry.
func (s *RecordingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.count("Get")
	return s.InmemStorage.Get(ctx, key)
}

// Put writes an entry.
func (s *RecordingStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	s.count("Put")
	return s.InmemStorage.Put(ctx, entry)
}

// Delete removes an entry.
func (s *RecordingStorage) Delete(ctx context.Context, key string) error {
	s.count("Delete")
	return s.InmemStorage.Delete(ctx, key)
}

// Calls returns how often each operation was called.
func (s *RecordingStorage) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// Keys lists every key stored, recursively, sorted.
func (s *RecordingStorage) Keys(ctx context.Context) ([]string, error) {
	var out []string
	var walk func(prefix string) error
	walk = func(prefix string) error {
		keys, err := s.InmemStorage.List(ctx, prefix)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k[len(k)-1] == '/' {
				if err := walk(prefix + k); err != nil {
					return err
				}
				continue
			}
			out = append(out, prefix+k)
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}
