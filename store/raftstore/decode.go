package raftstore

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eraftpb "go.etcd.io/raft/v3/raftpb"
)

// Raft's messages are proto2 messages whose every scalar field is a
// pointer: proto.Unmarshal makes one heap object per field present and
// three or four per entry, about 15 for a MsgApp carrying one entry, and
// copies each entry's data. Every message between stores is decoded here,
// so decodeMessage decodes the messages stores send each other in one
// object for the message's fields, one for its entries' fields and one for
// the entry pointers, with entry data and context sharing the (already
// owned) input. Anything else — a snapshot, responses, an unknown field or
// enum value, a field of an unexpected wire type, malformed bytes — is left
// to proto.Unmarshal, which decides what it means. FuzzDecodeMessage holds
// the two to the same result.

// messageFields holds a decoded message and the values its pointer fields
// point to.
type messageFields struct {
	m                                                        eraftpb.Message
	typ                                                      eraftpb.MessageType
	to, from, term, logTerm, index, commit, vote, rejectHint uint64
	reject                                                   bool
}

// entryFields holds a decoded entry and the values its pointer fields
// point to.
type entryFields struct {
	e           eraftpb.Entry
	term, index uint64
	typ         eraftpb.EntryType
}

// decodeMessage decodes b into a raft message.
func decodeMessage(b []byte) (*eraftpb.Message, error) {
	if m, ok := decodeMessageFast(b); ok {
		return m, nil
	}
	m := &eraftpb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeMessageFast decodes b, or reports false if b holds anything it
// leaves to proto.Unmarshal.
func decodeMessageFast(b []byte) (*eraftpb.Message, bool) {
	entries, ok := countEntries(b)
	if !ok {
		return nil, false
	}
	f := &messageFields{}
	m := &f.m
	var es []entryFields
	if entries > 0 {
		es = make([]entryFields, 0, entries)
		m.Entries = make([]*eraftpb.Entry, 0, entries)
	}
	for len(b) > 0 {
		num, v, data, isBytes, rest, ok := consumeField(b)
		if !ok {
			return nil, false
		}
		b = rest
		switch {
		case isBytes && num == 7:
			es = append(es, entryFields{})
			e := &es[len(es)-1]
			if !decodeEntry(data, e) {
				return nil, false
			}
			m.Entries = append(m.Entries, &e.e)
		case isBytes && num == 12:
			m.Context = data
		case isBytes:
			return nil, false
		case num == 1:
			if _, known := eraftpb.MessageType_name[int32(v)]; !known || v > math.MaxInt32 {
				return nil, false
			}
			f.typ, m.Type = eraftpb.MessageType(v), &f.typ
		case num == 2:
			f.to, m.To = v, &f.to
		case num == 3:
			f.from, m.From = v, &f.from
		case num == 4:
			f.term, m.Term = v, &f.term
		case num == 5:
			f.logTerm, m.LogTerm = v, &f.logTerm
		case num == 6:
			f.index, m.Index = v, &f.index
		case num == 8:
			f.commit, m.Commit = v, &f.commit
		case num == 10:
			f.reject, m.Reject = v != 0, &f.reject
		case num == 11:
			f.rejectHint, m.RejectHint = v, &f.rejectHint
		case num == 13:
			f.vote, m.Vote = v, &f.vote
		default:
			return nil, false
		}
	}
	return m, true
}

// countEntries counts b's entries field (7), and reports false if b is
// malformed at its top level.
func countEntries(b []byte) (int, bool) {
	count := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		if num == 7 && typ == protowire.BytesType {
			count++
		}
	}
	return count, true
}

// decodeEntry decodes b into e, or reports false.
func decodeEntry(b []byte, e *entryFields) bool {
	for len(b) > 0 {
		num, v, data, isBytes, rest, ok := consumeField(b)
		if !ok {
			return false
		}
		b = rest
		switch {
		case isBytes && num == 4:
			e.e.Data = data
		case isBytes:
			return false
		case num == 1:
			if _, known := eraftpb.EntryType_name[int32(v)]; !known || v > math.MaxInt32 {
				return false
			}
			e.typ, e.e.Type = eraftpb.EntryType(v), &e.typ
		case num == 2:
			e.term, e.e.Term = v, &e.term
		case num == 3:
			e.index, e.e.Index = v, &e.index
		default:
			return false
		}
	}
	return true
}

// consumeField reads b's first field, a varint (v) or a length-delimited
// one (data, capped at its length, isBytes), and returns what follows it;
// ok is false for malformed bytes and for any other wire type.
func consumeField(b []byte) (num protowire.Number, v uint64, data []byte, isBytes bool, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, false, nil, false
	}
	b = b[n:]
	switch typ {
	case protowire.VarintType:
		v, n = protowire.ConsumeVarint(b)
	case protowire.BytesType:
		data, n = protowire.ConsumeBytes(b)
		data, isBytes = data[:len(data):len(data)], true
	default:
		return 0, 0, nil, false, nil, false
	}
	if n < 0 {
		return 0, 0, nil, false, nil, false
	}
	return num, v, data, isBytes, b[n:], true
}
