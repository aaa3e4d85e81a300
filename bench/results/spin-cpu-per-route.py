#!/usr/bin/env python3
"""Spin's own CPU a request (its processes' user and system time) for six GET routes, 8 connections,
for each build named on the command line in turn: `spin-cpu-per-route.py base,new,new,base 2000`.

A build is a set of component files in /tmp/wasm-<name> (copied into target/ before its
`spin up`; "all" also sets SQLITE_CALLS=sync for c32-sync-calls.patch). The state directory
/tmp/msgstate and the runtime config /tmp/rc-msg.toml (runtime-config/local.toml with its paths
moved there) must hold the conversation c1-statement-timing.py seeds (`load 1 1`)."""
import http.client, json, threading, sys, time, os, subprocess, shutil, glob
H='127.0.0.1'; P=3901
def call(c, method, path, body=None, token=None):
    h={'content-type':'application/json'}
    if token: h['authorization']='Bearer '+token
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r=c.getresponse(); d=r.read(); return r.status, d
def spin_cpu():
    total=0
    for pid in subprocess.run(['pgrep','-f','spin'],capture_output=True,text=True).stdout.split():
        try:
            f=open(f'/proc/{pid}/stat').read().rsplit(')',1)[1].split()
            cmd=open(f'/proc/{pid}/cmdline').read()
        except OSError: continue
        if '3901' in cmd or 'trigger' in cmd:
            total+=int(f[11])+int(f[12])
    return total/os.sysconf('SC_CLK_TCK')
def start(way):
    for f in glob.glob(f'/tmp/wasm-{way}/*.wasm'): shutil.copy(f,'/work/main/target/wasm32-wasip2/release/')
    env=dict(os.environ, PATH='/work/shared/bin:'+os.environ['PATH'])
    args=['spin','up','--listen',f'{H}:{P}','--state-dir','/tmp/msgstate','--runtime-config-file','/tmp/rc-msg.toml']
    if way=='all': args+=['--env','SQLITE_CALLS=sync']
    p=subprocess.Popen(args,cwd='/work/main',env=env,stdout=open(f'/tmp/cpuab-{way}.log','a'),stderr=subprocess.STDOUT,start_new_session=True)
    for _ in range(120):
        try:
            c=http.client.HTTPConnection(H,P); call(c,'GET','/health'); return p
        except OSError: time.sleep(0.5)
    raise SystemExit('no spin')
def stop(p):
    os.killpg(p.pid,15); p.wait(); time.sleep(1)
ways=sys.argv[1].split(','); N=int(sys.argv[2]); T=8
results={}
for rnd,way in enumerate(ways):
    p=start(way)
    c=http.client.HTTPConnection(H,P); toks={}
    for u in ('reader1','writer1'):
        call(c,'POST','/auth/register',{'username':u,'password':'correct horse battery staple'})
        s,d=call(c,'POST','/auth/login',{'username':u,'password':'correct horse battery staple'}); toks[u]=json.loads(d)['access_token']
    s,d=call(c,'GET','/messages?with=writer1&limit=1',None,toks['reader1']); mid=json.loads(d)['messages'][0]['id']
    routes=[('/health',None),('/auth/authenticate','reader1'),('/messages?with=writer1&limit=50','reader1'),('/messages/'+mid,'reader1'),('/messages/unread','reader1'),('/catalog/categories',None)]
    for path,who in routes:
        def worker(n):
            c=http.client.HTTPConnection(H,P)
            for _ in range(n):
                s,_=call(c,'GET',path,None,toks.get(who))
                assert s==200,(path,s)
        ts=[threading.Thread(target=worker,args=(300//T,)) for _ in range(T)]; [x.start() for x in ts]; [x.join() for x in ts]
        time.sleep(0.3)
        c0=spin_cpu(); t0=time.time()
        ts=[threading.Thread(target=worker,args=(N//T,)) for _ in range(T)]; [x.start() for x in ts]; [x.join() for x in ts]
        time.sleep(0.25)
        c1=spin_cpu(); t1=time.time()
        results.setdefault(path.split('?')[0][:22]+('?' if '?' in path else ''),[]).append((way, round((c1-c0)/N*1e6), round(N/(t1-t0-0.25))))
    stop(p)
for k,v in results.items(): print('%-26s'%k, '  '.join('%s %4d us %4d/s'%x for x in v))
