package sandbox

import (
	"slices"
	"strings"
	"unicode"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// wasiModule is the only module a guest may import from.
const wasiModule = "wasi_snapshot_preview1"

// allowedImports are the WASI functions Go's wasip1 port imports, as the ABI
// lists them. Anything else makes a module inadmissible.
var allowedImports = map[string]bool{
	"args_get": true, "args_sizes_get": true, "environ_get": true, "environ_sizes_get": true,
	"clock_res_get": true, "clock_time_get": true, "fd_close": true, "fd_fdstat_get": true,
	"fd_fdstat_set_flags": true, "fd_prestat_get": true, "fd_prestat_dir_name": true,
	"fd_read": true, "fd_write": true, "fd_seek": true, "path_open": true, "poll_oneoff": true,
	"proc_exit": true, "random_get": true, "sched_yield": true,
}

// The ABI's exports and their types.
const (
	exportMemory     = "memory"
	exportInitialize = "_initialize"
	exportVersion    = "custos_abi_version"
	exportAlloc      = "custos_alloc"
	exportTrain      = "custos_train"
	exportRecommend  = "custos_recommend"
	abiVersion       = 1
)

type signature struct{ params, results []api.ValueType }

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

var requiredExports = []struct {
	name string
	sig  signature
}{
	{exportVersion, signature{nil, []api.ValueType{i32}}},
	{exportAlloc, signature{[]api.ValueType{i32}, []api.ValueType{i32}}},
	{exportTrain, signature{[]api.ValueType{i32, i32}, []api.ValueType{i64}}},
	{exportRecommend, signature{[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i64}}},
}

// checkImports refuses any import outside the allowlist, naming the first.
func checkImports(imports []wasmImport) *Error {
	for _, im := range imports {
		if im.module != wasiModule || im.kind != kindFunc || !allowedImports[im.name] {
			return errorf(CodeForbiddenImport, "the module imports %s %s.%s, which is not allowed",
				kindName(im.kind), quoteName(im.module), quoteName(im.name))
		}
	}
	return nil
}

// checkSignatures checks the exports the ABI requires and that each imported
// function has the type the host gives it.
func checkSignatures(cm wazero.CompiledModule, wasi map[string]api.FunctionDefinition) *Error {
	if _, ok := cm.ExportedMemories()[exportMemory]; !ok {
		return errorf(CodeInvalidModule, "the module does not export its memory as %q", exportMemory)
	}
	exports := cm.ExportedFunctions()
	for _, want := range requiredExports {
		if e := checkExport(exports, want.name, want.sig, true); e != nil {
			return e
		}
	}
	if e := checkExport(exports, exportInitialize, signature{}, false); e != nil {
		return e
	}
	for _, f := range cm.ImportedFunctions() {
		_, name, _ := f.Import()
		host := wasi[name]
		if host == nil || !sameSignature(f, signature{host.ParamTypes(), host.ResultTypes()}) {
			return errorf(CodeInvalidModule, "the module imports %s.%s with the wrong type", wasiModule, quoteName(name))
		}
	}
	return nil
}

func checkExport(exports map[string]api.FunctionDefinition, name string, sig signature, required bool) *Error {
	f, ok := exports[name]
	switch {
	case !ok && required:
		return errorf(CodeInvalidModule, "the module does not export %s", name)
	case ok && !sameSignature(f, sig):
		return errorf(CodeInvalidModule, "the module exports %s with the wrong type", name)
	}
	return nil
}

func sameSignature(f api.FunctionDefinition, sig signature) bool {
	return slices.Equal(f.ParamTypes(), sig.params) && slices.Equal(f.ResultTypes(), sig.results)
}

// quoteName makes a name the module chose fit for messages and logs.
func quoteName(s string) string { return printable(s, 64) }

// printable shortens s to about n bytes and replaces what is not printable.
func printable(s string, n int) string {
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "..."
	}
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}
