//! Debian's nginx for the tests that need a real proxy or RTMP ingest: started in the
//! foreground as this user with a whole `nginx.conf` written into the test's own folder (pid,
//! logs and temp files there too), ready once its port accepts connections, killed when
//! dropped (its error log printed if the test failed). Missing nginx fails the test.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's nginx, wherever it is.
pub fn nginx_binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.is_file() {
        return sbin;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("nginx is needed for this test: `apt-get install nginx` or run scripts/test.sh")
    })
}

/// A free loopback port (taken back right before nginx binds it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The lines every test's nginx.conf starts with: foreground, one process, files in `dir`.
pub fn preamble(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n"
    )
}

/// A running nginx.
pub struct Nginx {
    child: Option<Child>,
    /// Its folder (config, pid, logs).
    pub dir: PathBuf,
    /// The port the test waits for.
    pub port: u16,
}

impl Nginx {
    /// Write `conf` as `dir/nginx.conf`, start nginx with it, wait until `port` accepts.
    pub fn start(dir: &Path, conf: &str, port: u16) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            child: Some(child),
            dir: dir.to_path_buf(),
            port,
        };
        // Up once it accepts connections (it writes no line we could wait for).
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = ([127, 0, 0, 1], port).into();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(Ok(Some(status))) = nginx.child.as_mut().map(Child::try_wait) {
                panic!("nginx exited ({status}):\n{}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen:\n{}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// What nginx logged so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Stop it now (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("--- nginx error log ---\n{}", self.error_log());
        }
        self.kill();
    }
}
