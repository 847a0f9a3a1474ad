package localkms

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

const targetPrefix = "TrentService."

func operationName(target string) (string, bool) {
	op, ok := strings.CutPrefix(target, targetPrefix)
	return op, ok && op != ""
}

// decodeInput decodes a request body strictly: a parameter the server does
// not implement (Tags, DryRun, CustomKeyStoreId...) is refused rather than
// ignored, so a test never passes on behaviour AWS would not have.
func decodeInput(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return errSerialization("The request body is not valid JSON.")
		}
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return errUnsupported("The local KMS does not support the parameter %s.", field)
		}
		return errSerialization("The request body does not match the operation's input: %v", err)
	}
	if dec.More() {
		return errSerialization("The request body has data after its JSON object.")
	}
	return nil
}

func writeResponse(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Responses are built from plain structs; this cannot fail.
		panic("localkms: internal error: failed to encode response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("X-Amzn-ErrorType", e.code)
	writeResponse(w, e.status, struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.code, e.msg})
}
