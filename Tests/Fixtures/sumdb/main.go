// Command sumdb is a checksum database on 127.0.0.1 for tests, built on golang.org/x/mod/sumdb's own server
// (Debian's golang-golang-x-mod-dev), so its notes, tiles and proofs are exactly what the real go command checks.
//
// Build offline (no module download):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o sumdb Tests/Fixtures/sumdb/main.go
//
// Usage:
//
//	sumdb [-name NAME | -key SIGNERKEY] [-gosum FILE] [-proxy DIR] [-log FILE]
//
// Records come from -gosum (go.sum lines; every module@version in it is added at start, in file order, so the
// tree already has them) and from -proxy (a GOPROXY directory tree; a module@version found there is hashed with
// x/mod's dirhash and added when first looked up, so the tree grows). -gosum wins where both know a version,
// which lets a test serve a wrong hash. Without -key a fresh Ed25519 key is generated for NAME.
//
// Prints one line, "http://127.0.0.1:PORT VERIFIERKEY SIGNERKEY", then serves /lookup/, /latest and /tile/
// until killed. Each request path is appended to -log (if given) before it is answered.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	name := flag.String("name", "sumdb.test", "key name when generating a key")
	signerKey := flag.String("key", "", "signer key (PRIVATE+KEY+...); generated when empty")
	gosumFile := flag.String("gosum", "", "go.sum lines to serve, all added at start")
	proxyDir := flag.String("proxy", "", "GOPROXY directory tree to hash records from on first lookup")
	logFile := flag.String("log", "", "file to append request paths to")
	flag.Parse()

	skey, vkey := *signerKey, ""
	if skey == "" {
		var err error
		if skey, vkey, err = note.GenerateKey(rand.Reader, *name); err != nil {
			fail(err)
		}
	} else {
		vkey = verifierFor(skey)
	}

	lines, order := map[string][]byte{}, []module.Version{}
	if *gosumFile != "" {
		lines, order = readGoSum(*gosumFile)
	}
	gosum := func(path, version string) ([]byte, error) {
		key := path + "@" + version
		if data, ok := lines[key]; ok {
			return data, nil
		}
		if *proxyDir != "" {
			return hashFromProxy(*proxyDir, path, version)
		}
		return nil, fmt.Errorf("%s: %w", key, os.ErrNotExist)
	}
	ops := sumdb.NewTestServer(skey, gosum)
	for _, m := range order {
		if _, err := ops.Lookup(context.Background(), m); err != nil {
			fail(err)
		}
	}

	var logMu sync.Mutex
	server := sumdb.NewServer(ops)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *logFile != "" {
			logMu.Lock()
			if f, err := os.OpenFile(*logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintln(f, r.URL.Path)
				f.Close()
			}
			logMu.Unlock()
		}
		server.ServeHTTP(w, r)
	})

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	fmt.Printf("http://%s %s %s\n", listener.Addr(), vkey, skey)
	os.Stdout.Sync()
	fail(http.Serve(listener, handler))
}

// readGoSum groups go.sum lines by module@version, keeping the order in which versions first appear.
func readGoSum(file string) (map[string][]byte, []module.Version) {
	f, err := os.Open(file)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	records := map[string][]byte{}
	var order []module.Version
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) != 3 {
			continue
		}
		version := strings.TrimSuffix(fields[1], "/go.mod")
		key := fields[0] + "@" + version
		if _, ok := records[key]; !ok {
			order = append(order, module.Version{Path: fields[0], Version: version})
		}
		records[key] = append(records[key], []byte(scanner.Text()+"\n")...)
	}
	if err := scanner.Err(); err != nil {
		fail(err)
	}
	return records, order
}

// hashFromProxy computes the two go.sum lines of path@version from a GOPROXY tree with x/mod's dirhash.
func hashFromProxy(dir, path, version string) ([]byte, error) {
	escPath, err := module.EscapePath(path)
	if err != nil {
		return nil, err
	}
	escVersion, err := module.EscapeVersion(version)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(dir, filepath.FromSlash(escPath), "@v", escVersion)
	zipHash, err := dirhash.HashZip(base+".zip", dirhash.Hash1)
	if err != nil {
		return nil, err // a missing file is os.ErrNotExist: the server answers 404
	}
	mod, err := os.ReadFile(base + ".mod")
	if err != nil {
		return nil, err
	}
	modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(mod)), nil
	})
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, version, zipHash, path, version, modHash)), nil
}

// verifierFor derives the verifier key of a signer key "PRIVATE+KEY+name+hash+base64(1 || seed)".
func verifierFor(skey string) string {
	if _, err := note.NewSigner(skey); err != nil {
		fail(err)
	}
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		fail(fmt.Errorf("malformed signer key"))
	}
	public := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[2], public)
	if err != nil {
		fail(err)
	}
	return vkey
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sumdb:", err)
	os.Exit(1)
}
