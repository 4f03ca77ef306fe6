//! Arbitrary fleets into the assigner: balance, coverage and stickiness must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sqsbalancer_core::fuzzing::check_fleet(data);
});
