package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Limits of a transaction, checked before it is proposed and again when it
// is decoded from the log.
const (
	// MaxKeyLen is the longest key.
	MaxKeyLen = 1024
	// MaxTxnBytes bounds an encoded transaction (the whole desired state
	// of a large installation fits many times over).
	MaxTxnBytes = 32 << 20
)

// txnVersion is the version of the encoding of a transaction in the log.
const txnVersion = 1

// txn is a transaction as it travels in the raft log and in forwarded
// proposals.
type txn struct {
	V   int  `json:"v"`
	Ops []Op `json:"ops"`
}

// ValidateOps checks a transaction's shape: at least one op, every key
// non-empty and at most MaxKeyLen bytes, no key written twice.
func ValidateOps(ops []Op) error {
	if len(ops) == 0 {
		return fmt.Errorf("cluster: empty transaction")
	}
	seen := make(map[string]struct{}, len(ops))
	for i, op := range ops {
		switch {
		case op.Key == "":
			return fmt.Errorf("cluster: ops[%d].key: empty", i)
		case len(op.Key) > MaxKeyLen:
			return fmt.Errorf("cluster: ops[%d].key: %d bytes, more than %d", i, len(op.Key), MaxKeyLen)
		case op.Delete && len(op.Value) > 0:
			return fmt.Errorf("cluster: ops[%d] (%s): a delete carries a value", i, op.Key)
		case op.IfHash != nil && len(op.IfHash) != 32:
			return fmt.Errorf("cluster: ops[%d] (%s): if_hash of %d bytes, want 32 (SHA-256)", i, op.Key, len(op.IfHash))
		}
		if _, dup := seen[op.Key]; dup {
			return fmt.Errorf("cluster: ops[%d].key: %s written twice in one transaction", i, op.Key)
		}
		seen[op.Key] = struct{}{}
	}
	return nil
}

// encodeTxn validates ops and encodes them for the log.
func encodeTxn(ops []Op) ([]byte, error) {
	if err := ValidateOps(ops); err != nil {
		return nil, err
	}
	b, err := json.Marshal(txn{V: txnVersion, Ops: ops})
	if err != nil {
		return nil, fmt.Errorf("cluster: encode transaction: %w", err)
	}
	if len(b) > MaxTxnBytes {
		return nil, fmt.Errorf("cluster: transaction of %d bytes, more than %d", len(b), MaxTxnBytes)
	}
	return b, nil
}

// decodeTxn decodes and validates a transaction from the log or from a
// forwarded proposal. Unknown fields and trailing data are refused.
func decodeTxn(b []byte) ([]Op, error) {
	if len(b) > MaxTxnBytes {
		return nil, fmt.Errorf("cluster: transaction of %d bytes, more than %d", len(b), MaxTxnBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t txn
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("cluster: decode transaction: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("cluster: decode transaction: trailing data")
	}
	if t.V != txnVersion {
		return nil, fmt.Errorf("cluster: decode transaction: version %d, want %d", t.V, txnVersion)
	}
	if err := ValidateOps(t.Ops); err != nil {
		return nil, err
	}
	return t.Ops, nil
}
