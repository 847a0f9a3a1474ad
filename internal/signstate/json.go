package signstate

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signbytes"
)

// Formats ParseJSON recognises.
const (
	FormatFilePV      = "filepv"      // CometBFT priv_validator_state.json
	FormatTmkmsLight  = "tmkms-light" // tmkms / tmkms-light consensus state
	maxJSONStateBytes = 64 << 10
)

// ParseJSON reads a CometBFT FilePV state file
//
//	{"height":"5","round":1,"step":2,"signature":"<base64>","signbytes":"<HEX>"}
//
// or a tmkms/tmkms-light one (steps 0/1/2 for proposal/prevote/precommit)
//
//	{"height":"5","round":"1","step":1,"block_id":{"hash":"<HEX>","part_set_header":{"total":1,"hash":"<HEX>"}}}
//
// The presence of block_id tells them apart. Unknown keys are errors.
func ParseJSON(data []byte) (State, string, error) {
	if len(data) > maxJSONStateBytes {
		return State{}, "", fmt.Errorf("%w: JSON state file larger than %d bytes", ErrCorrupt, maxJSONStateBytes)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return State{}, "", fmt.Errorf("%w: not a JSON object: %v", ErrCorrupt, err)
	}
	if _, ok := probe["block_id"]; ok {
		s, err := parseTmkms(data)
		return s, FormatTmkmsLight, err
	}
	s, err := parseFilePV(data)
	return s, FormatFilePV, err
}

// flexInt accepts a JSON number or a decimal string, as both formats write
// int64 heights as strings and some writers use numbers.
type flexInt int64

func (v *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*v = flexInt(n)
	return nil
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

func parseFilePV(data []byte) (State, error) {
	var v struct {
		Height    *flexInt `json:"height"`
		Round     *flexInt `json:"round"`
		Step      *flexInt `json:"step"`
		Signature string   `json:"signature"`
		SignBytes string   `json:"signbytes"`
	}
	if err := strictDecode(data, &v); err != nil {
		return State{}, fmt.Errorf("filepv state: %w", err)
	}
	if v.Height == nil || v.Round == nil || v.Step == nil {
		return State{}, fmt.Errorf("filepv state: %w: height, round and step are required", ErrCorrupt)
	}
	s := State{Height: int64(*v.Height), Round: int32(*v.Round), Step: Step(*v.Step)}
	if int64(s.Round) != int64(*v.Round) || int64(s.Step) != int64(*v.Step) {
		return State{}, fmt.Errorf("filepv state: %w: round or step out of range", ErrCorrupt)
	}
	var err error
	if s.Signature, err = base64.StdEncoding.DecodeString(v.Signature); err != nil {
		return State{}, fmt.Errorf("filepv state: %w: signature is not base64", ErrCorrupt)
	}
	if s.SignBytes, err = hex.DecodeString(v.SignBytes); err != nil {
		return State{}, fmt.Errorf("filepv state: %w: signbytes is not hex", ErrCorrupt)
	}
	if len(s.SignBytes) > 0 {
		if s.BlockID, err = blockIDFromSignBytes(s.Step, s.SignBytes); err != nil {
			return State{}, fmt.Errorf("filepv state: %w", err)
		}
	}
	s.Signature, s.SignBytes = clone(s.Signature), clone(s.SignBytes)
	if err := validate(s); err != nil {
		return State{}, fmt.Errorf("filepv state: %w: %v", ErrCorrupt, err)
	}
	return s, nil
}

func parseTmkms(data []byte) (State, error) {
	type psh struct {
		Total *flexInt `json:"total"`
		Hash  string   `json:"hash"`
	}
	var v struct {
		Height  *flexInt `json:"height"`
		Round   *flexInt `json:"round"`
		Step    *flexInt `json:"step"`
		BlockID *struct {
			Hash  string `json:"hash"`
			PSH   *psh   `json:"part_set_header"`
			Parts *psh   `json:"parts"`
		} `json:"block_id"`
	}
	if err := strictDecode(data, &v); err != nil {
		return State{}, fmt.Errorf("tmkms state: %w", err)
	}
	if v.Height == nil || v.Round == nil || v.Step == nil {
		return State{}, fmt.Errorf("tmkms state: %w: height, round and step are required", ErrCorrupt)
	}
	if *v.Step < 0 || *v.Step > 2 || *v.Round < 0 || *v.Round > 1<<31-1 {
		return State{}, fmt.Errorf("tmkms state: %w: step %d or round %d out of range", ErrCorrupt, *v.Step, *v.Round)
	}
	// tmkms numbers the steps from 0; an initial state (height 0) stays at
	// StepNone so that nothing at height 0 is considered signed.
	s := State{Height: int64(*v.Height), Round: int32(*v.Round)}
	if s.Height > 0 {
		s.Step = Step(*v.Step + 1)
	}
	if b := v.BlockID; b != nil {
		p := b.PSH
		if p == nil {
			p = b.Parts
		}
		var err error
		if s.BlockID.Hash, err = hex.DecodeString(b.Hash); err != nil {
			return State{}, fmt.Errorf("tmkms state: %w: block_id.hash is not hex", ErrCorrupt)
		}
		if p != nil {
			if p.Total != nil {
				if *p.Total < 0 || *p.Total > 1<<32-1 {
					return State{}, fmt.Errorf("tmkms state: %w: part_set_header.total out of range", ErrCorrupt)
				}
				s.BlockID.PartsTotal = uint32(*p.Total)
			}
			if s.BlockID.PartsHash, err = hex.DecodeString(p.Hash); err != nil {
				return State{}, fmt.Errorf("tmkms state: %w: part_set_header.hash is not hex", ErrCorrupt)
			}
		}
	}
	s.BlockID.Hash, s.BlockID.PartsHash = clone(s.BlockID.Hash), clone(s.BlockID.PartsHash)
	if err := validate(s); err != nil {
		return State{}, fmt.Errorf("tmkms state: %w: %v", ErrCorrupt, err)
	}
	return s, nil
}

// blockIDFromSignBytes extracts the block a signed canonical message names.
func blockIDFromSignBytes(step Step, sb []byte) (BlockID, error) {
	switch step {
	case StepPropose, StepPrevote, StepPrecommit:
	default:
		return BlockID{}, errors.Join(ErrCorrupt, fmt.Errorf("signbytes present at step %d", step))
	}
	m, err := signbytes.Decode(step == StepPropose, sb)
	if err != nil {
		return BlockID{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if m.BlockID == nil {
		return BlockID{}, nil
	}
	return BlockID{Hash: m.BlockID.Hash, PartsTotal: m.BlockID.PartSetHeader.Total, PartsHash: m.BlockID.PartSetHeader.Hash}, nil
}
