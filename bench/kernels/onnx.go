package main

import (
	"encoding/binary"
	"math"
)

// A minimal ONNX model writer: just the protobuf messages and fields of
// onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto,
// TensorProto, ValueInfoProto) that the benchmark's few graphs need, so the
// models ONNX Runtime Web runs are built here without Python or a protobuf
// library. Field numbers follow onnx.proto3 (ONNX 1.16).

// protobuf wire types.
const (
	wireVarint  = 0
	wireBytes   = 2
	wireFixed32 = 5
)

// pbuf appends protobuf fields to a message.
type pbuf []byte

func (p *pbuf) tag(field, wire int) { p.varint(uint64(field<<3 | wire)) }

func (p *pbuf) varint(v uint64) {
	*p = binary.AppendUvarint(*p, v)
}

// int writes a varint field (int32, int64 and enums; negative values as
// ten-byte two's complement, as protobuf does for int64).
func (p *pbuf) int(field int, v int64) {
	p.tag(field, wireVarint)
	p.varint(uint64(v))
}

func (p *pbuf) bytes(field int, b []byte) {
	p.tag(field, wireBytes)
	p.varint(uint64(len(b)))
	*p = append(*p, b...)
}

func (p *pbuf) str(field int, s string) { p.bytes(field, []byte(s)) }

func (p *pbuf) float(field int, f float32) {
	p.tag(field, wireFixed32)
	*p = binary.LittleEndian.AppendUint32(*p, math.Float32bits(f))
}

// ONNX enums used here: TensorProto.DataType and AttributeProto.AttributeType.
const (
	onnxFloat = 1 // TensorProto.FLOAT
	onnxInt64 = 7 // TensorProto.INT64

	attrFloat = 1 // AttributeProto.FLOAT
	attrInt   = 2 // AttributeProto.INT
	attrInts  = 7 // AttributeProto.INTS
)

// onnxAttr is an encoded AttributeProto.
type onnxAttr []byte

// intAttr is an INT attribute (AttributeProto: name 1, i 3, type 20).
func intAttr(name string, v int64) onnxAttr {
	var p pbuf
	p.str(1, name)
	p.int(3, v)
	p.int(20, attrInt)
	return onnxAttr(p)
}

// floatAttr is a FLOAT attribute (f 2).
func floatAttr(name string, v float32) onnxAttr {
	var p pbuf
	p.str(1, name)
	p.float(2, v)
	p.int(20, attrFloat)
	return onnxAttr(p)
}

// intsAttr is an INTS attribute (ints 8, unpacked as onnx.proto2 declares
// it; proto3 parsers accept both encodings).
func intsAttr(name string, vs ...int64) onnxAttr {
	var p pbuf
	p.str(1, name)
	for _, v := range vs {
		p.int(8, v)
	}
	p.int(20, attrInts)
	return onnxAttr(p)
}

// onnxGraph collects the encoded parts of a GraphProto.
type onnxGraph struct {
	name    string
	nodes   []pbuf
	inits   []pbuf
	inputs  []pbuf
	outputs []pbuf
}

// node adds a NodeProto (input 1, output 2, name 3, op_type 4,
// attribute 5, domain 7); domain "" is the default ONNX domain.
func (g *onnxGraph) node(op, domain string, ins, outs []string, attrs ...onnxAttr) {
	var p pbuf
	for _, s := range ins {
		p.str(1, s)
	}
	for _, s := range outs {
		p.str(2, s)
	}
	p.str(3, outs[0]+"_"+op)
	p.str(4, op)
	for _, a := range attrs {
		p.bytes(5, a)
	}
	if domain != "" {
		p.str(7, domain)
	}
	g.nodes = append(g.nodes, p)
}

// tensorHeader starts a TensorProto: dims 1, data_type 2, name 8.
func tensorHeader(name string, dtype int, shape []int) pbuf {
	var p pbuf
	for _, d := range shape {
		p.int(1, int64(d))
	}
	p.int(2, int64(dtype))
	p.str(8, name)
	return p
}

// initF32 adds a float32 initializer (a weight) with its data as raw_data
// (field 9, little-endian).
func (g *onnxGraph) initF32(name string, shape []int, data []float32) {
	p := tensorHeader(name, onnxFloat, shape)
	raw := make([]byte, 0, 4*len(data))
	for _, v := range data {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	p.bytes(9, raw)
	g.inits = append(g.inits, p)
}

// initI64 adds a 1-D int64 initializer (a Reshape target shape).
func (g *onnxGraph) initI64(name string, data ...int64) {
	p := tensorHeader(name, onnxInt64, []int{len(data)})
	raw := make([]byte, 0, 8*len(data))
	for _, v := range data {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
	}
	p.bytes(9, raw)
	g.inits = append(g.inits, p)
}

// valueInfo encodes a ValueInfoProto of a float tensor: name 1, type 2 →
// TypeProto.tensor_type 1 → elem_type 1, shape 2 → dim 1 → dim_value 1.
func valueInfo(name string, shape []int) pbuf {
	var shp pbuf
	for _, d := range shape {
		var dim pbuf
		dim.int(1, int64(d))
		shp.bytes(1, dim)
	}
	var tt pbuf
	tt.int(1, onnxFloat)
	tt.bytes(2, shp)
	var typ pbuf
	typ.bytes(1, tt)
	var p pbuf
	p.str(1, name)
	p.bytes(2, typ)
	return p
}

func (g *onnxGraph) input(name string, shape ...int) {
	g.inputs = append(g.inputs, valueInfo(name, shape))
}

func (g *onnxGraph) output(name string, shape ...int) {
	g.outputs = append(g.outputs, valueInfo(name, shape))
}

// model encodes the ModelProto: ir_version 1 (8), producer_name 2,
// graph 7 (GraphProto: node 1, name 2, initializer 5, input 11, output 12)
// and opset_import 8 (OperatorSetIdProto: domain 1, version 2) for the
// default domain at opset 17 and com.microsoft at 1 (MultiHeadAttention).
func (g *onnxGraph) model() []byte {
	var gp pbuf
	for _, n := range g.nodes {
		gp.bytes(1, n)
	}
	gp.str(2, g.name)
	for _, t := range g.inits {
		gp.bytes(5, t)
	}
	for _, v := range g.inputs {
		gp.bytes(11, v)
	}
	for _, v := range g.outputs {
		gp.bytes(12, v)
	}
	var m pbuf
	m.int(1, 8)
	m.str(2, "tgate-bench-kernels")
	m.bytes(7, gp)
	for _, op := range []struct {
		domain  string
		version int64
	}{{"", 17}, {"com.microsoft", 1}} {
		var o pbuf
		if op.domain != "" {
			o.str(1, op.domain)
		}
		o.int(2, op.version)
		m.bytes(8, o)
	}
	return m
}
