//! Arbitrary input sequences into one node: it must never panic and its invariants must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sqsbalancer_core::fuzzing::drive_node(data);
});
