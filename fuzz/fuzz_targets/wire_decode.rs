//! Any bytes into `wire::decode`, on both channels: it must never panic, and
//! whatever it accepts must survive a re-encode unchanged.

#![no_main]

use aurora_core::wire::{check_limits, decode, encode, Channel};
use aurora_fuzz::{seal, CLUSTER};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    for channel in [Channel::Datagram, Channel::Stream] {
        let Ok(envelope) = decode(CLUSTER, channel, bytes) else {
            continue;
        };
        assert_eq!(check_limits(&envelope.message), Ok(()));
        let again = encode(
            envelope.cluster,
            envelope.sender,
            envelope.life,
            &envelope.message,
        );
        let redecoded = decode(CLUSTER, channel, &again);
        assert_eq!(
            redecoded.as_ref(),
            Ok(&envelope),
            "re-encoded: {again:02x?}"
        );
        // The encoding of a decoded message is canonical: encoding it twice agrees.
        assert_eq!(
            encode(
                envelope.cluster,
                envelope.sender,
                envelope.life,
                &envelope.message
            ),
            again
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The same bytes with a correct checksum, so mutations of the body reach the
    // parser instead of stopping at the CRC.
    let mut sealed = data.to_vec();
    seal(&mut sealed);
    if sealed != data {
        check(&sealed);
    }
});
