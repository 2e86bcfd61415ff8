//! Expansion of `#[rate_limit(...)]`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{ItemFn, LitInt, LitStr, ReturnType};

#[derive(Default)]
struct Args {
    max_requests: Option<u32>,
    time_window: Option<u64>,
    burst_size: u32,
    name: Option<String>,
    wait: Option<u64>,
}

/// Parses a humantime duration literal into whole nanoseconds.
pub(crate) fn duration_nanos(lit: &LitStr) -> syn::Result<u64> {
    let duration = humantime::parse_duration(&lit.value())
        .map_err(|e| syn::Error::new(lit.span(), format!("invalid duration: {e}")))?;
    u64::try_from(duration.as_nanos()).map_err(|_| syn::Error::new(lit.span(), "duration too long"))
}

fn parse_args(attr: TokenStream) -> syn::Result<Args> {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("max_requests") {
            let value: LitInt = meta.value()?.parse()?;
            args.max_requests = Some(value.base10_parse()?);
        } else if meta.path.is_ident("time_window") {
            args.time_window = Some(duration_nanos(&meta.value()?.parse()?)?);
        } else if meta.path.is_ident("burst_size") {
            let value: LitInt = meta.value()?.parse()?;
            args.burst_size = value.base10_parse()?;
        } else if meta.path.is_ident("name") {
            let value: LitStr = meta.value()?.parse()?;
            args.name = Some(value.value());
        } else if meta.path.is_ident("wait") {
            args.wait = Some(duration_nanos(&meta.value()?.parse()?)?);
        } else {
            return Err(
                meta.error("expected one of: max_requests, time_window, burst_size, name, wait")
            );
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(args)
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_args(attr)?;
    let function: ItemFn = syn::parse2(item)?;
    let Some(max_requests) = args.max_requests else {
        return Err(syn::Error::new(
            Span::call_site(),
            "missing `max_requests = N`",
        ));
    };
    if max_requests == 0 {
        return Err(syn::Error::new(
            Span::call_site(),
            "max_requests must be at least 1",
        ));
    }
    let Some(time_window) = args.time_window else {
        return Err(syn::Error::new(
            Span::call_site(),
            "missing `time_window = \"60s\"`",
        ));
    };
    if time_window == 0 {
        return Err(syn::Error::new(
            Span::call_site(),
            "time_window must be longer than zero",
        ));
    }
    if matches!(function.sig.output, ReturnType::Default) {
        return Err(syn::Error::new_spanned(
            &function.sig,
            "#[rate_limit] needs a function returning Result<_, E> where E: From<RateLimitError>",
        ));
    }
    let is_async = function.sig.asyncness.is_some();
    if args.wait.is_some() && !is_async {
        return Err(syn::Error::new_spanned(
            &function.sig,
            "`wait` needs an async fn: a sync fn cannot wait without blocking its thread",
        ));
    }

    let burst_size = args.burst_size;
    let build = match &args.name {
        Some(name) => quote! {
            ::bulwark::ratelimit::RateLimiterRegistry::global()
                .get_or_create(#name, __bulwark_config)
                .map_err(::core::convert::Into::into)
        },
        None => quote! {
            ::bulwark::ratelimit::RateLimiter::new(__bulwark_config)
                .map_err(::core::convert::Into::into)
        },
    };
    let take = match args.wait {
        Some(wait) => quote! {
            __bulwark_limiter
                .acquire_with_max_wait(1, ::core::time::Duration::from_nanos(#wait))
                .await
        },
        None => quote! { __bulwark_limiter.check(1) },
    };
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            {
                static __BULWARK_RATE_LIMITER: ::std::sync::OnceLock<
                    ::core::result::Result<
                        ::bulwark::ratelimit::RateLimiter,
                        ::bulwark::ratelimit::RateLimitError,
                    >,
                > = ::std::sync::OnceLock::new();
                let __bulwark_limiter = __BULWARK_RATE_LIMITER.get_or_init(|| {
                    let __bulwark_config = ::bulwark::ratelimit::RateLimitConfig::new(
                        #max_requests,
                        ::core::time::Duration::from_nanos(#time_window),
                        #burst_size,
                    );
                    #build
                });
                match __bulwark_limiter {
                    ::core::result::Result::Ok(__bulwark_limiter) => {
                        if let ::core::result::Result::Err(__bulwark_error) = #take {
                            return ::core::result::Result::Err(
                                ::core::convert::From::from(__bulwark_error),
                            );
                        }
                    }
                    ::core::result::Result::Err(__bulwark_error) => {
                        return ::core::result::Result::Err(::core::convert::From::from(
                            ::core::clone::Clone::clone(__bulwark_error),
                        ));
                    }
                }
            }
            #block
        }
    })
}
