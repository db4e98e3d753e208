// Command gofetcher is an athens fetcher plugin written in Go: built with
//
//	go build -buildmode=c-shared -o libGoFetcher.so .
//
// it serves one module version held in memory (by default example.com/gohello@v1.0.0), zip built with
// archive/zip. The descriptor lives in plugin.c; this file holds the logic behind it.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../Sources/PluginABI/include
#include <stdlib.h>
#include "athens_plugin.h"
#include "gofetcher.h"
*/
import "C"

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"runtime/cgo"
	"strings"
	"unsafe"
)

// variant is set with -ldflags=-X main.variant=... to build a second, different library from this source.
var variant = "a"

const version = "v1.0.0"

type fetcher struct {
	module string
	info   []byte
	mod    []byte
	zip    []byte
}

func newFetcher(configJSON string) (*fetcher, error) {
	var config struct {
		Module string `json:"module"`
	}
	decoder := json.NewDecoder(strings.NewReader(configJSON))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&config); err != nil {
		return nil, fmt.Errorf("config: %v", err)
	}
	if config.Module == "" {
		config.Module = "example.com/gohello"
	}
	f := &fetcher{module: config.Module}
	f.info = []byte(`{"Version":"` + version + `","Time":"2024-01-02T03:04:05Z"}`)
	f.mod = []byte("module " + config.Module + "\n\ngo 1.19\n")
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	prefix := config.Module + "@" + version + "/"
	files := []struct{ name, body string }{
		{"go.mod", string(f.mod)},
		{"hello.go", "package gohello\n\n// Hello says where it came from.\nfunc Hello() string { return \"hello from a Go plugin (" + variant + ")\" }\n"},
	}
	for _, file := range files {
		out, err := w.Create(prefix + file.name)
		if err != nil {
			return nil, err
		}
		if _, err := out.Write([]byte(file.body)); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	f.zip = buf.Bytes()
	return f, nil
}

func setError(err *C.ath_error, message string) {
	text := C.CString(message)
	defer C.free(unsafe.Pointer(text))
	C.gofetcher_error(err, text)
}

// write hands Go bytes to a host sink: allowed, since the slice holds no Go pointers and C keeps it only for the call.
func write(sink *C.ath_sink, data []byte) bool {
	if len(data) == 0 {
		return true
	}
	return C.gofetcher_write(sink, (*C.uint8_t)(unsafe.Pointer(&data[0])), C.uint64_t(len(data))) == 0
}

func instance(handle C.uintptr_t) *fetcher { return cgo.Handle(handle).Value().(*fetcher) }

// recovered turns a panic into ATH_INTERNAL: a panic that reached C would kill athens. Deferred by every entry.
func recovered(err *C.ath_error, status *C.ath_status) {
	if r := recover(); r != nil {
		setError(err, fmt.Sprintf("gofetcher: panic: %v", r))
		*status = C.ATH_INTERNAL
	}
}

//export goFetcherCreate
func goFetcherCreate(configJSON *C.char, out *C.uintptr_t, err *C.ath_error) (status C.ath_status) {
	defer recovered(err, &status)
	f, e := newFetcher(C.GoString(configJSON))
	if e != nil {
		setError(err, e.Error())
		return C.ATH_INVALID
	}
	*out = C.uintptr_t(cgo.NewHandle(f))
	return C.ATH_OK
}

//export goFetcherDestroy
func goFetcherDestroy(handle C.uintptr_t) { cgo.Handle(handle).Delete() }

//export goFetcherFetch
func goFetcherFetch(handle C.uintptr_t, module, ver *C.char, info, mod, zip *C.ath_sink, err *C.ath_error) (status C.ath_status) {
	defer recovered(err, &status)
	f := instance(handle)
	m, v := C.GoString(module), C.GoString(ver)
	if m != f.module || v != version {
		setError(err, m+"@"+v+": not served by this fetcher")
		return C.ATH_NOT_FOUND
	}
	if !write(info, f.info) || !write(mod, f.mod) || !write(zip, f.zip) {
		setError(err, m+"@"+v+": the host refused the data")
		return C.ATH_INVALID
	}
	return C.ATH_OK
}

//export goFetcherList
func goFetcherList(handle C.uintptr_t, module *C.char, emit C.ath_emit_version_fn, ctx unsafe.Pointer, err *C.ath_error) (status C.ath_status) {
	defer recovered(err, &status)
	f := instance(handle)
	if C.GoString(module) != f.module {
		setError(err, C.GoString(module)+": not served by this fetcher")
		return C.ATH_NOT_FOUND
	}
	text := C.CString(version)
	defer C.free(unsafe.Pointer(text))
	C.gofetcher_emit(emit, ctx, text)
	return C.ATH_OK
}

//export goFetcherResolve
func goFetcherResolve(handle C.uintptr_t, module, query *C.char, info *C.ath_sink, err *C.ath_error) (status C.ath_status) {
	defer recovered(err, &status)
	f := instance(handle)
	m, q := C.GoString(module), C.GoString(query)
	if m != f.module || (q != "latest" && q != version) {
		setError(err, m+"@"+q+": no such version here")
		return C.ATH_NOT_FOUND
	}
	if !write(info, f.info) {
		setError(err, m+": the host refused the data")
		return C.ATH_INVALID
	}
	return C.ATH_OK
}

func main() {}
