//! `--window`: the renderer's page in a window of the system webview (wry + tao; WebKitGTK on
//! Linux) instead of a browser tab. Main runs on the runtime's threads; the window's event loop
//! owns this one. Closing the window stops main (its store closed first).

use std::process::ExitCode;
use std::time::Duration;

use tao::event::{Event, WindowEvent};
use tao::event_loop::{ControlFlow, EventLoop};
use tao::window::WindowBuilder;
use wry::WebViewBuilder;

use crate::{Args, finish, run as run_main};

/// Starts main, waits until it listens, then shows its page in a window until it closes.
pub fn run(runtime: tokio::runtime::Runtime, args: Args) -> ExitCode {
    let (ready, address) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        // Main stops when the window closes, on Ctrl-C or on SIGTERM; the process ends with
        // it (the window cannot outlive main).
        let result = runtime.block_on(run_main(args, ready, async move {
            tokio::select! {
                _ = stopped => {}
                () = crate::stop_signal() => {}
            }
        }));
        std::process::exit(match result {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("chum-desktop: {message}");
                2
            }
        });
    });
    let url = match address.recv() {
        Ok(url) => url,
        // Main failed before it listened: its thread says why and ends the process.
        Err(_) => {
            std::thread::sleep(Duration::from_secs(5));
            return finish(Err("main stopped before it listened".into()));
        }
    };
    let event_loop = EventLoop::new();
    let window = match WindowBuilder::new()
        .with_title("chum")
        .with_inner_size(tao::dpi::LogicalSize::new(1100.0, 720.0))
        .build(&event_loop)
    {
        Ok(window) => window,
        Err(error) => return finish(Err(format!("cannot open a window: {error}"))),
    };
    let builder = WebViewBuilder::new().with_url(&url);
    #[cfg(target_os = "linux")]
    let webview = {
        use tao::platform::unix::WindowExtUnix;
        use wry::WebViewBuilderExtUnix;
        match window.default_vbox() {
            Some(container) => builder.build_gtk(container),
            None => return finish(Err("the window has no GTK container".into())),
        }
    };
    #[cfg(not(target_os = "linux"))]
    let webview = builder.build(&window);
    let webview = match webview {
        Ok(webview) => webview,
        Err(error) => return finish(Err(format!("cannot show the page in a webview: {error}"))),
    };
    eprintln!("chum-desktop: the page is open in a window");
    let mut stop = Some(stop);
    event_loop.run(move |event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        let _keep = (&window, &webview);
        if let Event::WindowEvent {
            event: WindowEvent::CloseRequested,
            ..
        } = event
        {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
            // Main closes its store, then ends the process; if it hangs, leave anyway.
            std::thread::sleep(Duration::from_secs(10));
            *control_flow = ControlFlow::Exit;
        }
    });
}
