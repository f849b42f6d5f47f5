mod captured;
mod roundtrip;
mod tracked;
