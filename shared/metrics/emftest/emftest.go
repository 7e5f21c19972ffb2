// Package emftest checks that a line is a valid CloudWatch Embedded Metric
// Format document: against emf.schema.json, written from the EMF
// specification, and against the specification's reference rules the
// schema lists under x-references (every dimension key and metric name is a
// root member; a dimension's value is a string; a metric's value is a
// number or an array of at most 100 numbers).
//
// The validator understands the JSON Schema keywords the schema uses and no
// others: type, required, properties, additionalProperties, items,
// minItems, maxItems, minLength, maxLength, pattern, enum, minimum, oneOf
// and local $ref. It is for tests and uses the standard library only.
package emftest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

//go:embed emf.schema.json
var schemaJSON []byte

// Schema returns the schema's text.
func Schema() []byte { return slices.Clone(schemaJSON) }

var root = func() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(schemaJSON, &m); err != nil {
		panic("emftest: emf.schema.json: " + err.Error())
	}
	return m
}()

// Doc is a decoded EMF line.
type Doc struct {
	Timestamp  int64
	Namespace  string
	Dimensions [][]string
	// Values are the root members: dimension values are strings, metric
	// values float64 or []any of float64.
	Values map[string]any
	// Units maps each metric name to its unit ("" when none).
	Units map[string]string
}

// Validate checks one line (without its newline) and decodes it.
func Validate(line []byte) (Doc, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return Doc{}, fmt.Errorf("not JSON: %w", err)
	}
	if d.More() {
		return Doc{}, errors.New("data after the JSON object")
	}
	if err := check(root, v, "$"); err != nil {
		return Doc{}, err
	}
	return references(v.(map[string]any))
}

// references checks the rules JSON Schema cannot state and decodes the
// document.
func references(doc map[string]any) (Doc, error) {
	refs := root["x-references"].(map[string]any)
	aws := doc["_aws"].(map[string]any)
	ts, _ := aws["Timestamp"].(json.Number).Int64()
	out := Doc{Timestamp: ts, Values: map[string]any{}, Units: map[string]string{}}
	for i, dir := range aws["CloudWatchMetrics"].([]any) {
		md := dir.(map[string]any)
		out.Namespace = md["Namespace"].(string)
		for _, set := range md["Dimensions"].([]any) {
			var keys []string
			for _, k := range set.([]any) {
				key := k.(string)
				target, ok := doc[key]
				if !ok {
					return Doc{}, fmt.Errorf("CloudWatchMetrics[%d]: dimension %q is not a member of the root node", i, key)
				}
				if err := check(refs["dimensionTarget"].(map[string]any), target, "$."+key); err != nil {
					return Doc{}, err
				}
				if strings.TrimSpace(target.(string)) == "" || !ascii(target.(string)) {
					return Doc{}, fmt.Errorf("$.%s: a dimension value must be ASCII with a non-space character", key)
				}
				keys = append(keys, key)
				out.Values[key] = target
			}
			out.Dimensions = append(out.Dimensions, keys)
		}
		for _, m := range md["Metrics"].([]any) {
			def := m.(map[string]any)
			name := def["Name"].(string)
			target, ok := doc[name]
			if !ok {
				return Doc{}, fmt.Errorf("CloudWatchMetrics[%d]: metric %q is not a member of the root node", i, name)
			}
			if err := check(refs["metricTarget"].(map[string]any), target, "$."+name); err != nil {
				return Doc{}, err
			}
			unit, _ := def["Unit"].(string)
			out.Units[name] = unit
			out.Values[name] = plain(target)
		}
	}
	return out, nil
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] < 0x20 {
			return false
		}
	}
	return true
}

// plain turns json.Numbers into float64.
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	}
	return v
}

// check validates v against schema s at path.
func check(s map[string]any, v any, path string) error {
	if ref, ok := s["$ref"].(string); ok {
		name, ok := strings.CutPrefix(ref, "#/definitions/")
		if !ok {
			return fmt.Errorf("%s: unsupported $ref %q", path, ref)
		}
		return check(root["definitions"].(map[string]any)[name].(map[string]any), v, path)
	}
	if t, ok := s["type"]; ok {
		if err := checkType(t, v, path); err != nil {
			return err
		}
	}
	if e, ok := s["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return equal(x, v) }) {
		return fmt.Errorf("%s: %v is not one of %v", path, v, e)
	}
	if of, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, sub := range of {
			if check(sub.(map[string]any), v, path) == nil {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: %v matches %d of oneOf's schemas, want exactly 1", path, v, n)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		return checkObject(s, x, path)
	case []any:
		if min, ok := num(s["minItems"]); ok && float64(len(x)) < min {
			return fmt.Errorf("%s: %d items, want at least %v", path, len(x), min)
		}
		if max, ok := num(s["maxItems"]); ok && float64(len(x)) > max {
			return fmt.Errorf("%s: %d items, want at most %v", path, len(x), max)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range x {
				if err := check(items, e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	case string:
		n := float64(utf8.RuneCountInString(x))
		if min, ok := num(s["minLength"]); ok && n < min {
			return fmt.Errorf("%s: %q is shorter than %v", path, x, min)
		}
		if max, ok := num(s["maxLength"]); ok && n > max {
			return fmt.Errorf("%s: %q is longer than %v", path, x, max)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(x) {
			return fmt.Errorf("%s: %q does not match %s", path, x, p)
		}
	case json.Number:
		f, _ := x.Float64()
		if min, ok := num(s["minimum"]); ok && f < min {
			return fmt.Errorf("%s: %v is below %v", path, f, min)
		}
	}
	return nil
}

func checkObject(s map[string]any, x map[string]any, path string) error {
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if _, ok := x[r.(string)]; !ok {
				return fmt.Errorf("%s: required member %q is missing", path, r)
			}
		}
	}
	props, _ := s["properties"].(map[string]any)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range x {
			if !yield(k) {
				return
			}
		}
	}) {
		if p, ok := props[k].(map[string]any); ok {
			if err := check(p, x[k], path+"."+k); err != nil {
				return err
			}
			continue
		}
		switch ap := s["additionalProperties"].(type) {
		case bool:
			if !ap {
				return fmt.Errorf("%s: member %q is not allowed", path, k)
			}
		case map[string]any:
			if err := check(ap, x[k], path+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkType(t any, v any, path string) error {
	var types []string
	switch x := t.(type) {
	case string:
		types = []string{x}
	case []any:
		for _, e := range x {
			types = append(types, e.(string))
		}
	}
	for _, want := range types {
		if typeOf(v, want) {
			return nil
		}
	}
	return fmt.Errorf("%s: %v is not of type %v", path, v, t)
}

func typeOf(v any, t string) bool {
	switch x := v.(type) {
	case map[string]any:
		return t == "object"
	case []any:
		return t == "array"
	case string:
		return t == "string"
	case bool:
		return t == "boolean"
	case nil:
		return t == "null"
	case json.Number:
		if t == "number" {
			return true
		}
		if t == "integer" {
			f, err := x.Float64()
			return err == nil && f == math.Trunc(f)
		}
	}
	return false
}

func num(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

func equal(schemaValue, v any) bool {
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		return schemaValue == f
	}
	return schemaValue == v
}

// Lines splits output into lines and returns the EMF ones (those with an
// _aws member), validated and decoded; any EMF line that is not valid is
// an error. Other lines (logs) are skipped.
func Lines(output []byte) ([]Doc, error) {
	var docs []Doc
	for i, line := range bytes.Split(output, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"_aws"`)) {
			continue
		}
		d, err := Validate(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %s: %w", i+1, line, err)
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// Sum adds up the metric name over docs whose dimension values all equal
// dims (a metric value that is an array counts its length).
func Sum(docs []Doc, name string, dims map[string]string) float64 {
	var total float64
	for _, d := range docs {
		if !matches(d, dims) {
			continue
		}
		switch v := d.Values[name].(type) {
		case float64:
			if _, isMetric := d.Units[name]; isMetric {
				total += v
			}
		case []any:
			total += float64(len(v))
		}
	}
	return total
}

func matches(d Doc, dims map[string]string) bool {
	for k, want := range dims {
		if got, _ := d.Values[k].(string); got != want {
			return false
		}
	}
	return true
}
