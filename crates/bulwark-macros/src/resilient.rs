//! Expansion of `#[resilient(pipeline = "...")]`.
//!
//! The body becomes the call of `ResiliencePipeline::execute` (an async block per attempt) or
//! `execute_blocking` (a closure per attempt) of the pipeline of that name in the process-wide
//! `PipelineRegistry`, looked up on first use and cached in a `static` once found.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr, ReturnType};

fn parse_pipeline(attr: TokenStream) -> syn::Result<String> {
    let mut pipeline = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("pipeline") {
            let value: LitStr = meta.value()?.parse()?;
            pipeline = Some(value.value());
            Ok(())
        } else {
            Err(meta.error("unknown argument; expected `pipeline = \"...\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    match pipeline {
        Some(name) if !name.is_empty() => Ok(name),
        Some(_) => Err(syn::Error::new(
            Span::call_site(),
            "the pipeline name cannot be empty",
        )),
        None => Err(syn::Error::new(
            Span::call_site(),
            "#[resilient] needs pipeline = \"...\"",
        )),
    }
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let name = parse_pipeline(attr)?;
    let function: ItemFn = syn::parse2(item)?;
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &function;
    let ReturnType::Type(_, ret) = &sig.output else {
        return Err(syn::Error::new(
            sig.span(),
            "#[resilient] functions must return Result<T, E> where E: From<bulwark::pipeline::Rejection> + Classify",
        ));
    };
    let call = if sig.asyncness.is_some() {
        quote! {
            __bulwark_pipeline
                .execute(|| async {
                    let __bulwark_result: #ret = #block;
                    __bulwark_result
                })
                .await
        }
    } else {
        quote! { __bulwark_pipeline.execute_blocking(|| -> #ret { #block }) }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            static __BULWARK_PIPELINE: ::std::sync::OnceLock<::bulwark::pipeline::ResiliencePipeline> =
                ::std::sync::OnceLock::new();
            let __bulwark_pipeline = match __BULWARK_PIPELINE.get() {
                ::core::option::Option::Some(pipeline) => pipeline,
                ::core::option::Option::None => {
                    match ::bulwark::pipeline::PipelineRegistry::global().get(#name) {
                        ::core::option::Option::Some(pipeline) => __BULWARK_PIPELINE.get_or_init(|| pipeline),
                        ::core::option::Option::None => {
                            return ::core::result::Result::Err(::core::convert::From::from(
                                ::bulwark::pipeline::Rejection::UnknownPipeline(::std::sync::Arc::from(#name)),
                            ));
                        }
                    }
                }
            };
            #call.map_err(::bulwark::pipeline::PipelineError::flatten)
        }
    })
}
