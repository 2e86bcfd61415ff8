//! Expansion of `#[rate_limit(...)]`.

use proc_macro2::TokenStream;

pub(crate) fn expand(_attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    Ok(item)
}
