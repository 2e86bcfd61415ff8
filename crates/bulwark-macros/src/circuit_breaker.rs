//! Expansion of `#[circuit_breaker(...)]`.
//!
//! The function body runs inside `CircuitBreaker::call` (a closure) or `call_async` (an async
//! block) of a breaker taken once from the process-wide registry and cached in a `static`.
//! The config is a `const` checked by a `const` assertion, so a bad config fails the build.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, MetaNameValue, ReturnType, Token};

const KEYS: &str = "name, failure_threshold, success_threshold, timeout, half_open_max_calls, \
                    slow_call_threshold, failure_rate, window_calls, window, minimum_calls";

#[derive(Default)]
struct Args {
    name: Option<String>,
    failure_threshold: Option<u32>,
    success_threshold: Option<u32>,
    timeout: Option<u64>,
    half_open_max_calls: Option<u32>,
    slow_call_threshold: Option<u64>,
    failure_rate: Option<f64>,
    window_calls: Option<u32>,
    window: Option<u64>,
    minimum_calls: Option<u32>,
}

fn lit(value: &Expr) -> syn::Result<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Ok(lit),
        other => Err(syn::Error::new(other.span(), "expected a literal")),
    }
}

fn string(value: &Expr) -> syn::Result<String> {
    match lit(value)? {
        Lit::Str(s) => Ok(s.value()),
        other => Err(syn::Error::new(other.span(), "expected a string literal")),
    }
}

fn count(value: &Expr) -> syn::Result<u32> {
    match lit(value)? {
        Lit::Int(i) => i.base10_parse(),
        other => Err(syn::Error::new(other.span(), "expected an integer literal")),
    }
}

fn nanos(value: &Expr) -> syn::Result<u64> {
    let text = string(value)?;
    let duration = humantime::parse_duration(&text)
        .map_err(|e| syn::Error::new(value.span(), format!("invalid duration {text:?}: {e}")))?;
    u64::try_from(duration.as_nanos())
        .map_err(|_| syn::Error::new(value.span(), "duration too long"))
}

fn rate(value: &Expr) -> syn::Result<f64> {
    match lit(value)? {
        Lit::Float(f) => f.base10_parse(),
        Lit::Int(i) => i.base10_parse::<u32>().map(f64::from),
        other => Err(syn::Error::new(
            other.span(),
            "expected a number such as 0.5",
        )),
    }
}

fn parse_args(attr: TokenStream) -> syn::Result<Args> {
    let pairs = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(attr)?;
    let mut args = Args::default();
    for pair in &pairs {
        let key = pair
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let v = &pair.value;
        match key.as_str() {
            "name" => args.name = Some(string(v)?),
            "failure_threshold" => args.failure_threshold = Some(count(v)?),
            "success_threshold" => args.success_threshold = Some(count(v)?),
            "timeout" => args.timeout = Some(nanos(v)?),
            "half_open_max_calls" => args.half_open_max_calls = Some(count(v)?),
            "slow_call_threshold" => args.slow_call_threshold = Some(nanos(v)?),
            "failure_rate" => args.failure_rate = Some(rate(v)?),
            "window_calls" => args.window_calls = Some(count(v)?),
            "window" => args.window = Some(nanos(v)?),
            "minimum_calls" => args.minimum_calls = Some(count(v)?),
            _ => {
                return Err(syn::Error::new(
                    pair.path.span(),
                    format!("unknown argument; expected one of: {KEYS}"),
                ));
            }
        }
    }
    Ok(args)
}

fn config(args: &Args, span: Span) -> syn::Result<TokenStream> {
    let failure = args.failure_threshold.unwrap_or(5);
    let success = args.success_threshold.unwrap_or(2);
    let timeout = args.timeout.unwrap_or(60_000_000_000);
    let half_open = args.half_open_max_calls.unwrap_or(3);
    let mut config = quote! {
        ::bulwark::breaker::CircuitBreakerConfig::new(
            #failure, #success, ::core::time::Duration::from_nanos(#timeout), #half_open,
        )
    };
    if let Some(slow) = args.slow_call_threshold {
        config =
            quote! { #config.with_slow_call_threshold(::core::time::Duration::from_nanos(#slow)) };
    }
    let minimum = args.minimum_calls.unwrap_or(10);
    let window = match (args.failure_rate, args.window_calls, args.window) {
        (None, None, None) if args.minimum_calls.is_none() => None,
        (Some(rate), Some(calls), None) => {
            Some(quote! { ::bulwark::breaker::SlidingWindow::calls(#calls, #rate, #minimum) })
        }
        (Some(rate), None, Some(nanos)) => Some(quote! {
            ::bulwark::breaker::SlidingWindow::time(
                ::core::time::Duration::from_nanos(#nanos), #rate, #minimum,
            )
        }),
        _ => {
            return Err(syn::Error::new(
                span,
                "sliding-window mode needs failure_rate and exactly one of window_calls or window",
            ));
        }
    };
    if let Some(window) = window {
        config = quote! { #config.with_sliding_window(#window) };
    }
    Ok(config)
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_args(attr)?;
    let function: ItemFn = syn::parse2(item)?;
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &function;
    let Some(name) = args.name.as_deref() else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[circuit_breaker] needs name = \"...\"",
        ));
    };
    if name.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "the breaker name cannot be empty",
        ));
    }
    let ReturnType::Type(_, ret) = &sig.output else {
        return Err(syn::Error::new(
            sig.span(),
            "#[circuit_breaker] functions must return Result<T, E> where E: From<bulwark::breaker::Rejected>",
        ));
    };
    let config = config(&args, Span::call_site())?;
    let call = if sig.asyncness.is_some() {
        quote! {
            __bulwark_breaker
                .call_async(async move {
                    let __bulwark_result: #ret = #block;
                    __bulwark_result
                })
                .await
        }
    } else {
        quote! { __bulwark_breaker.call(move || -> #ret { #block }) }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            const __BULWARK_CONFIG: ::bulwark::breaker::CircuitBreakerConfig = #config;
            const _: () = ::core::assert!(
                __BULWARK_CONFIG.validate().is_ok(),
                "invalid #[circuit_breaker] configuration",
            );
            static __BULWARK_BREAKER: ::std::sync::OnceLock<::bulwark::breaker::CircuitBreaker> =
                ::std::sync::OnceLock::new();
            let __bulwark_breaker = __BULWARK_BREAKER.get_or_init(|| {
                ::bulwark::breaker::BreakerRegistry::global()
                    .__get_or_create_checked(#name, __BULWARK_CONFIG)
            });
            #call.map_err(::bulwark::breaker::CircuitBreakerError::flatten)
        }
    })
}
