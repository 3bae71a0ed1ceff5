"""A small SMTP sink for Keel's outbound tests (stdlib only).

Usage: smtp_sink.py CONFIG.json LOG.jsonl   -- prints the port, then serves 127.0.0.1.
The config is re-read at every connection (and its transaction replies at every MAIL),
so a test can change the behaviour between attempts. Keys: "rcpt" {address: reply}, "mail" reply, "data" reply, "dsn" (bool,
advertise DSN), "auth" [user, password] (advertise AUTH PLAIN and require it),
"slow" seconds to wait before the final data reply, "progress" a file that gets one line
per message data received (before the slow wait). Each finished transaction is appended
to the log as one JSON object; one whose client hung up during the slow wait gets no
reply and is logged with "abandoned": true (the client never saw it accepted).
"""
import base64, json, socket, socketserver, sys, threading, time

CONFIG, LOG = sys.argv[1], sys.argv[2]
lock = threading.Lock()
active = [0]

def config():
    try:
        with open(CONFIG) as f:
            return json.load(f)
    except Exception:
        return {}

def record(obj):
    with lock:
        with open(LOG, 'a') as f:
            f.write(json.dumps(obj) + '\n')

class Handler(socketserver.StreamRequestHandler):
    def peer_gone(self):
        """True when the client closed its side (a killed process) without a QUIT."""
        sock = self.connection
        sock.setblocking(False)
        try:
            return sock.recv(1, socket.MSG_PEEK) == b''
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        finally:
            sock.setblocking(True)

    def send(self, line):
        self.wfile.write((line + '\r\n').encode())
        self.wfile.flush()

    def handle(self):
        cfg = config()
        with lock:
            active[0] += 1
        try:
            self.session(cfg)
        finally:
            with lock:
                active[0] -= 1

    def session(self, cfg):
        self.send('220 sink.remote.test ESMTP')
        authed = 'auth' not in cfg
        auth_user = None
        mail, rcpts, ehlo = None, [], None
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            verb = line.split(' ', 1)[0].upper()
            if verb in ('EHLO', 'HELO'):
                ehlo = line[5:]
                caps = ['250-sink.remote.test', '250-PIPELINING', '250-SIZE 10000000', '250-8BITMIME']
                if cfg.get('dsn', True):
                    caps.append('250-DSN')
                if 'auth' in cfg:
                    caps.append('250-AUTH PLAIN')
                caps.append('250 ENHANCEDSTATUSCODES')
                for c in caps:
                    self.send(c)
            elif verb == 'AUTH':
                parts = line.split(' ')
                if len(parts) >= 3:
                    blob = parts[2]
                else:
                    self.send('334 ')
                    blob = self.rfile.readline().decode().strip()
                try:
                    _, user, pw = base64.b64decode(blob).decode().split('\0')
                except Exception:
                    self.send('501 5.5.2 bad AUTH data')
                    continue
                if [user, pw] == cfg['auth']:
                    authed, auth_user = True, user
                    self.send('235 2.7.0 ok')
                else:
                    self.send('535 5.7.8 bad credentials')
            elif verb == 'MAIL':
                # Transaction replies are re-read at every MAIL, so a session Keel keeps
                # open (its outbound connection cache) sees a test's change too.
                fresh = config()
                for key in ('mail', 'rcpt', 'data', 'slow'):
                    if key in fresh:
                        cfg[key] = fresh[key]
                    else:
                        cfg.pop(key, None)
                if not authed:
                    self.send('530 5.7.0 authentication required')
                    continue
                reply = cfg.get('mail', '250 2.1.0 ok')
                if reply.startswith('2'):
                    mail, rcpts = line, []
                self.send(reply)
            elif verb == 'RCPT':
                addr = line.split('<', 1)[1].split('>', 1)[0] if '<' in line else ''
                reply = cfg.get('rcpt', {}).get(addr, '250 2.1.5 ok')
                if reply.startswith('2'):
                    rcpts.append(line)
                self.send(reply)
            elif verb == 'DATA':
                if not rcpts:
                    self.send('554 5.5.1 no valid recipients')
                    continue
                self.send('354 go ahead')
                data = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b'.\r\n', b'.\n'):
                        break
                    if l.startswith(b'..'):
                        l = l[1:]
                    data.append(l)
                with lock:
                    concurrent = active[0]
                if cfg.get('progress'):
                    with lock:
                        with open(cfg['progress'], 'a') as f:
                            f.write(json.dumps({'mail': mail, 'rcpts': rcpts}) + '\n')
                time.sleep(cfg.get('slow', 0))
                reply = cfg.get('data', '250 2.0.0 queued')
                entry = {'ehlo': ehlo, 'mail': mail, 'rcpts': rcpts, 'auth': auth_user,
                         'data': b''.join(data).decode('utf-8', 'replace'),
                         'concurrent': concurrent, 'reply': reply, 'time': time.time()}
                if cfg.get('slow') and self.peer_gone():
                    entry['abandoned'] = True
                    record(entry)
                    return
                record(entry)
                self.send(reply)
                mail, rcpts = None, []
            elif verb == 'RSET':
                mail, rcpts = None, []
                self.send('250 2.0.0 ok')
            elif verb == 'QUIT':
                self.send('221 2.0.0 bye')
                return
            elif verb == 'NOOP':
                self.send('250 2.0.0 ok')
            else:
                self.send('502 5.5.2 not implemented')

class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

srv = Server(('127.0.0.1', 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
