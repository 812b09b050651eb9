// Package tbevents writes TensorBoard event files, so that `tensorboard
// --logdir` shows a training run's scalars: a TFRecord stream (each record
// a little-endian length, its masked CRC-32C, the data and the data's
// masked CRC-32C) of Event protobuf messages, the first carrying the file
// version "brain.Event:2" and each later one a Summary with one simple
// scalar value. The messages are encoded with protowire; no TensorFlow
// code is linked.
//
// A Writer belongs to one goroutine at a time and owns its file until
// Close. Read decodes such a file (outside bytes: it checks every CRC and
// bounds every length).
package tbevents
