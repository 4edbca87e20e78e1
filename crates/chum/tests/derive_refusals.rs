//! What `#[derive(Document)]` must refuse at compile time, each with its message
//! (`derive_ui/*.rs` and the expected compiler output beside it).

#[test]
fn the_derive_refuses_what_cannot_be_a_recipe() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/derive_ui/*.rs");
}
