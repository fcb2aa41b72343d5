// Command gohash is a development tool for the Rust `shared_types::hash` module.
//
// It is the reference implementation the Rust code is checked against: it uses the real
// k8s.io/api types and Go's encoding/json, so its output is what the Argo Rollouts
// controller (written in Go) computes. It is not used at run time.
//
// Subcommands (run from this directory):
//
//	go run . layout > ../../src/hash/go_layout.rs && rustfmt --edition 2024 --config max_width=110 ../../src/hash/go_layout.rs
//	    Walks corev1.PodTemplateSpec with reflection and prints a Rust table that describes the Go
//	    field order, JSON names, omitempty flags and field kinds of every reachable struct.
//	go run . vectors < ../../tests/data/hash/templates.json > ../../tests/data/hash/golden.json
//	    Reads an array of {"name", "collisionCount"?, "template"} and prints, for each, the Go JSON
//	    bytes of the template and the pod-template hash.
//	go run . quantities < ../../tests/data/hash/quantities.json > ../../tests/data/hash/quantities_golden.json
//	    Reads an array of quantity strings and prints [{"input", "canonical"}], canonical being null
//	    for inputs Go rejects (it then refuses to decode the whole object).
//	go run . hash [-cc N] < template.json
//	    Prints the Go JSON and the hash of a single PodTemplateSpec (for debugging).
//
// The hashing code here is written from the algorithm description (FNV-1a 32 over the JSON bytes,
// optional collision count, decimal digits through rand.SafeEncodeString), not copied.
package main

import (
	"bufio"
	"bytes"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
)

// honorOmitzero selects whether `omitzero` struct tags are honoured. Argo Rollouts up to v1.8
// was built against k8s.io/apimachinery releases whose ObjectMeta.CreationTimestamp had no
// `omitzero` tag, so its JSON always contains `"creationTimestamp":null`; the seed hashes taken
// from a real cluster only match with this set to false.
var honorOmitzero = false

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gohash layout|vectors|quantities|hash [-omitzero] [-cc N]")
		os.Exit(2)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	omitzero := fs.Bool("omitzero", false, "honour omitzero tags (apimachinery >= 0.34 built with Go >= 1.24)")
	cc := fs.Int("cc", -1, "collision count for `hash` (negative: none)")
	_ = fs.Parse(os.Args[2:])
	honorOmitzero = *omitzero

	var err error
	switch cmd {
	case "layout":
		err = cmdLayout(os.Stdout)
	case "vectors":
		err = cmdVectors(os.Stdin, os.Stdout)
	case "quantities":
		err = cmdQuantities(os.Stdin, os.Stdout)
	case "hash":
		var ccp *int32
		if *cc >= 0 {
			v := int32(*cc)
			ccp = &v
		}
		err = cmdHash(os.Stdin, os.Stdout, ccp)
	default:
		err = fmt.Errorf("unknown subcommand %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gohash:", err)
		os.Exit(1)
	}
}

// ---------------------------------------------------------------------------------------------
// hashing

// templateJSON returns the bytes that Argo hashes: encoding/json of the PodTemplateSpec.
func templateJSON(t *corev1.PodTemplateSpec) ([]byte, error) {
	if honorOmitzero {
		return json.Marshal(t)
	}
	return json.Marshal(withoutOmitzero(t))
}

// withoutOmitzero returns the template converted to an equivalent value whose types carry no
// `omitzero` tags anywhere, which is what encoding/json saw in Argo Rollouts builds whose
// apimachinery predates the tag (ObjectMeta.CreationTimestamp, also reached through
// PersistentVolumeClaimTemplate.metadata). Struct types are rebuilt with reflect.StructOf,
// embedded structs flattened into their parent (same JSON, and StructOf cannot embed unnamed
// types); leaf types with their own MarshalJSON (Quantity, IntOrString, Time, FieldsV1) and
// scalar types are kept as they are.
func withoutOmitzero(t *corev1.PodTemplateSpec) any {
	v := reflect.ValueOf(*t)
	return convertLegacy(v, legacyType(v.Type())).Interface()
}

type legacyStruct struct {
	t     reflect.Type
	paths [][]int // for each field of t, its index path in the original struct
}

var legacyStructs = map[reflect.Type]*legacyStruct{}

func isLeaf(t reflect.Type) bool {
	switch t {
	case quantityT, intOrStringT, timeT, fieldsV1T:
		return true
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Struct:
		return false
	}
	return true
}

func legacyType(t reflect.Type) reflect.Type {
	if isLeaf(t) {
		return t
	}
	switch t.Kind() {
	case reflect.Pointer:
		return reflect.PointerTo(legacyType(t.Elem()))
	case reflect.Slice:
		return reflect.SliceOf(legacyType(t.Elem()))
	case reflect.Map:
		return reflect.MapOf(t.Key(), legacyType(t.Elem()))
	}
	if ls, ok := legacyStructs[t]; ok {
		return ls.t
	}
	var fields []reflect.StructField
	var paths [][]int
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			path := append(append([]int{}, prefix...), i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, path)
				continue
			}
			if !f.IsExported() || tag == "-" {
				continue
			}
			newTag := strings.Replace(string(f.Tag), ",omitzero", "", 1)
			fields = append(fields, reflect.StructField{
				Name: fmt.Sprintf("F%d", len(fields)),
				Type: legacyType(f.Type),
				Tag:  reflect.StructTag(newTag),
			})
			paths = append(paths, path)
		}
	}
	walk(t, nil)
	ls := &legacyStruct{t: reflect.StructOf(fields), paths: paths}
	legacyStructs[t] = ls
	return ls.t
}

func convertLegacy(v reflect.Value, nt reflect.Type) reflect.Value {
	if v.Type() == nt {
		return v
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return reflect.Zero(nt)
		}
		p := reflect.New(nt.Elem())
		p.Elem().Set(convertLegacy(v.Elem(), nt.Elem()))
		return p
	case reflect.Slice:
		if v.IsNil() {
			return reflect.Zero(nt)
		}
		s := reflect.MakeSlice(nt, v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			s.Index(i).Set(convertLegacy(v.Index(i), nt.Elem()))
		}
		return s
	case reflect.Map:
		if v.IsNil() {
			return reflect.Zero(nt)
		}
		m := reflect.MakeMapWithSize(nt, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			m.SetMapIndex(iter.Key(), convertLegacy(iter.Value(), nt.Elem()))
		}
		return m
	case reflect.Struct:
		ls := legacyStructs[v.Type()]
		out := reflect.New(nt).Elem()
		for i, path := range ls.paths {
			out.Field(i).Set(convertLegacy(v.FieldByIndex(path), nt.Field(i).Type))
		}
		return out
	}
	panic(fmt.Sprintf("convertLegacy: unexpected %s -> %s", v.Type(), nt))
}

// computeHash is FNV-1a 32 over the bytes, then the collision count (if any) as 8 bytes
// little-endian, then the decimal sum mapped through rand.SafeEncodeString.
func computeHash(b []byte, collisionCount *int32) string {
	h := fnv.New32a()
	h.Write(b)
	if collisionCount != nil {
		buf := make([]byte, 8)
		binary.LittleEndian.PutUint32(buf, uint32(*collisionCount))
		h.Write(buf)
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

type vectorIn struct {
	Name           string                 `json:"name"`
	CollisionCount *int32                 `json:"collisionCount,omitempty"`
	Template       corev1.PodTemplateSpec `json:"template"`
}

type vectorOut struct {
	Name           string          `json:"name"`
	CollisionCount *int32          `json:"collisionCount"`
	Template       json.RawMessage `json:"template"`
	GoJSON         string          `json:"goJson"`
	Hash           string          `json:"hash"`
}

func cmdVectors(r io.Reader, w io.Writer) error {
	var raw []json.RawMessage
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return err
	}
	out := make([]vectorOut, 0, len(raw))
	for _, item := range raw {
		var in vectorIn
		if err := json.Unmarshal(item, &in); err != nil {
			return fmt.Errorf("decoding %s: %w", item, err)
		}
		var tmpl struct {
			Template json.RawMessage `json:"template"`
		}
		if err := json.Unmarshal(item, &tmpl); err != nil {
			return err
		}
		b, err := templateJSON(&in.Template)
		if err != nil {
			return err
		}
		out = append(out, vectorOut{
			Name:           in.Name,
			CollisionCount: in.CollisionCount,
			Template:       tmpl.Template,
			GoJSON:         string(b),
			Hash:           computeHash(b, in.CollisionCount),
		})
	}
	return writeIndented(w, out)
}

func cmdHash(r io.Reader, w io.Writer, cc *int32) error {
	var t corev1.PodTemplateSpec
	if err := json.NewDecoder(r).Decode(&t); err != nil {
		return err
	}
	b, err := templateJSON(&t)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n%s\n", b, computeHash(b, cc))
	return nil
}

// quantityOut is one quantity vector; Canonical is null when Go rejects the input.
type quantityOut struct {
	Input     string  `json:"input"`
	Canonical *string `json:"canonical"`
}

func cmdQuantities(r io.Reader, w io.Writer) error {
	var in []string
	if err := json.NewDecoder(r).Decode(&in); err != nil {
		return err
	}
	out := make([]quantityOut, 0, len(in))
	for _, s := range in {
		// Decode through JSON like the controller does (Quantity.UnmarshalJSON), then
		// re-encode: that is exactly the canonicalisation the hash sees.
		var q resource.Quantity
		lit, _ := json.Marshal(s)
		if err := json.Unmarshal(lit, &q); err != nil {
			out = append(out, quantityOut{Input: s})
			continue
		}
		b, err := json.Marshal(q)
		if err != nil {
			return err
		}
		var c string
		if err := json.Unmarshal(b, &c); err != nil {
			return err
		}
		out = append(out, quantityOut{Input: s, Canonical: &c})
	}
	return writeIndented(w, out)
}

func writeIndented(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ---------------------------------------------------------------------------------------------
// layout

var (
	marshalerT     = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
	textMarshalerT = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
	quantityT      = reflect.TypeOf(resource.Quantity{})
	intOrStringT   = reflect.TypeOf(intstr.IntOrString{})
	timeT          = reflect.TypeOf(metav1.Time{})
	fieldsV1T      = reflect.TypeOf(metav1.FieldsV1{})
)

type goField struct {
	name      string
	omitEmpty bool
	omitZero  bool
	kind      string // Rust expression of type GoKind
}

type layout struct {
	order   []reflect.Type
	statics map[reflect.Type]string
	fields  map[reflect.Type][]goField
	names   map[string]reflect.Type
}

func cmdLayout(w io.Writer) error {
	l := &layout{statics: map[reflect.Type]string{}, fields: map[reflect.Type][]goField{}, names: map[string]reflect.Type{}}
	root := l.structRef(reflect.TypeOf(corev1.PodTemplateSpec{}))
	for i := 0; i < len(l.order); i++ {
		t := l.order[i]
		fs, err := l.collect(t)
		if err != nil {
			return err
		}
		l.fields[t] = fs
	}

	bw := bufio.NewWriter(w)
	defer bw.Flush()
	api, mach := moduleVersions()
	fmt.Fprintf(bw, "// @generated by shared-types/tools/gohash (`./generate.sh` there, which runs `go run . layout`\n")
	fmt.Fprintf(bw, "// and rustfmt) from k8s.io/api %s, k8s.io/apimachinery %s. Do not edit by hand.\n", api, mach)
	fmt.Fprintf(bw, "\n")
	fmt.Fprintf(bw, "//! Go struct layout of `corev1.PodTemplateSpec` and every struct reachable from it: JSON names\n")
	fmt.Fprintf(bw, "//! in Go declaration order (embedded structs flattened), omitempty/omitzero flags and kinds.\n\n")
	fmt.Fprintf(bw, "use super::layout::{GoField, GoKind, GoStruct};\n\n")
	fmt.Fprintf(bw, "/// The root of the table: `k8s.io/api/core/v1.PodTemplateSpec`.\n")
	fmt.Fprintf(bw, "pub static ROOT: &GoStruct = &%s;\n", root)
	for _, t := range l.order {
		fmt.Fprintf(bw, "\n/// `%s.%s`\n", t.PkgPath(), t.Name())
		fmt.Fprintf(bw, "pub static %s: GoStruct = GoStruct {\n    name: %q,\n    fields: &[\n", l.statics[t], t.Name())
		for _, f := range l.fields[t] {
			fmt.Fprintf(bw, "        GoField::new(%q, %s)", f.name, f.kind)
			if f.omitEmpty {
				fmt.Fprintf(bw, ".omitempty()")
			}
			if f.omitZero {
				fmt.Fprintf(bw, ".omitzero()")
			}
			fmt.Fprintf(bw, ",\n")
		}
		fmt.Fprintf(bw, "    ],\n};\n")
	}
	return nil
}

func moduleVersions() (string, string) {
	api, mach := "?", "?"
	b, err := os.ReadFile("go.mod")
	if err != nil {
		return api, mach
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "k8s.io/api" {
			api = f[1]
		}
		if len(f) >= 2 && f[0] == "k8s.io/apimachinery" {
			mach = f[1]
		}
	}
	return api, mach
}

func (l *layout) structRef(t reflect.Type) string {
	if s, ok := l.statics[t]; ok {
		return s
	}
	name := upperSnake(t.Name())
	if other, ok := l.names[name]; ok && other != t {
		name = upperSnake(lastPathElems(t.PkgPath())) + "_" + name
	}
	l.names[name] = t
	l.statics[t] = name
	l.order = append(l.order, t)
	return name
}

func lastPathElems(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2] + parts[len(parts)-1]
	}
	return p
}

// collect lists the JSON-visible fields of a struct the way encoding/json does for the
// cases present in the Kubernetes API: exported fields, `json:"-"` skipped, anonymous struct
// fields without a tag name flattened in place. Name conflicts (which encoding/json resolves
// by depth) do not occur in these types; the tool fails loudly if one appears.
func (l *layout) collect(t reflect.Type) ([]goField, error) {
	var out []goField
	seen := map[string]bool{}
	var walk func(t reflect.Type) error
	walk = func(t reflect.Type) error {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					return fmt.Errorf("%s.%s: embedded pointer not supported", t.Name(), f.Name)
				}
				if ft.Kind() == reflect.Struct {
					if err := walk(ft); err != nil {
						return err
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if seen[name] {
				return fmt.Errorf("%s: duplicate JSON name %q", t.Name(), name)
			}
			seen[name] = true
			if strings.Contains(","+opts+",", ",string,") {
				return fmt.Errorf("%s.%s: ,string option not supported", t.Name(), f.Name)
			}
			kind, err := l.kindOf(f.Type)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
			}
			out = append(out, goField{
				name:      name,
				omitEmpty: strings.Contains(","+opts+",", ",omitempty,"),
				omitZero:  strings.Contains(","+opts+",", ",omitzero,"),
				kind:      kind,
			})
		}
		return nil
	}
	if err := walk(t); err != nil {
		return nil, err
	}
	return out, nil
}

func (l *layout) kindOf(t reflect.Type) (string, error) {
	switch t {
	case quantityT:
		return "GoKind::Quantity", nil
	case intOrStringT:
		return "GoKind::IntOrString", nil
	case timeT:
		return "GoKind::Time", nil
	case fieldsV1T:
		return "GoKind::RawJson", nil
	}
	// A pointer type has its element's methods in its method set; only judge non-pointers.
	if t.Kind() != reflect.Pointer && (t.Implements(marshalerT) || reflect.PointerTo(t).Implements(marshalerT)) {
		return "", fmt.Errorf("type %s has an unexpected MarshalJSON", t)
	}
	if t.Kind() != reflect.Pointer && (t.Implements(textMarshalerT) || reflect.PointerTo(t).Implements(textMarshalerT)) {
		return "", fmt.Errorf("type %s has an unexpected MarshalText", t)
	}
	switch t.Kind() {
	case reflect.String:
		return "GoKind::String", nil
	case reflect.Bool:
		return "GoKind::Bool", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "GoKind::Int", nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "GoKind::Uint", nil
	case reflect.Float32, reflect.Float64:
		return "", fmt.Errorf("float fields not supported (%s)", t)
	case reflect.Pointer:
		inner, err := l.kindOf(t.Elem())
		if err != nil {
			return "", err
		}
		return "GoKind::Ptr(&" + inner + ")", nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "GoKind::Bytes", nil
		}
		inner, err := l.kindOf(t.Elem())
		if err != nil {
			return "", err
		}
		return "GoKind::Slice(&" + inner + ")", nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return "", fmt.Errorf("map key %s not supported", t.Key())
		}
		inner, err := l.kindOf(t.Elem())
		if err != nil {
			return "", err
		}
		return "GoKind::Map(&" + inner + ")", nil
	case reflect.Struct:
		return "GoKind::Struct(&" + l.structRef(t) + ")", nil
	}
	return "", fmt.Errorf("unsupported kind %s (%s)", t.Kind(), t)
}

// upperSnake turns a Go type name into a Rust static name: "HTTPGetAction" -> "HTTP_GET_ACTION".
func upperSnake(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		isUpper := c >= 'A' && c <= 'Z'
		if i > 0 && isUpper {
			prev := r[i-1]
			prevLower := (prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9')
			nextLower := i+1 < len(r) && r[i+1] >= 'a' && r[i+1] <= 'z'
			prevUpper := prev >= 'A' && prev <= 'Z'
			if prevLower || (prevUpper && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteString(strings.ToUpper(string(c)))
	}
	return b.String()
}
