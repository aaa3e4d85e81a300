#!/usr/bin/env python3
"""Drives the instrumented messages component of c1-statement-timing.patch on one connection and
prints the median and mean of each TIMING field Spin wrote to its output.

Usage: spin up --listen 127.0.0.1:3901 ... --env MSG_VARIANT=<window|agg|aggorder|count|concat|cte|sync> > spin.log 2>&1
       c1-statement-timing.py load 1 1000; c1-statement-timing.py report spin.log"""
import sys

def load():
    import http.client, json, threading, sys, time
    H='127.0.0.1'; P=3901
    def call(c, method, path, body=None, token=None):
        h={'content-type':'application/json'}
        if token: h['authorization']='Bearer '+token
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r=c.getresponse(); d=r.read(); return r.status, d
    c=http.client.HTTPConnection(H,P)
    toks={}
    for u in ('reader1','writer1'):
        call(c,'POST','/auth/register',{'username':u,'password':'correct horse battery staple'})
        s,d=call(c,'POST','/auth/login',{'username':u,'password':'correct horse battery staple'}); toks[u]=json.loads(d)['access_token']
    ids=[]
    for i in range(200):
        a,b=('writer1','reader1') if i%2==0 else ('reader1','writer1')
        s,d=call(c,'POST','/messages',{'to':b,'body':f'message {i}'},toks[a]); ids.append(json.loads(d)['id'])
    def worker(path, n):
        c=http.client.HTTPConnection(H,P)
        for _ in range(n): call(c,'GET',path,None,toks['reader1'])
    for path in ('/messages?with=writer1&limit=50', '/messages/'+ids[0]):
        ts=[threading.Thread(target=worker,args=(path,int(sys.argv[3]))) for _ in range(int(sys.argv[2]))]
        t=time.time(); [x.start() for x in ts]; [x.join() for x in ts]; print(path, time.time()-t)

def report():
    import re,sys,statistics as st,collections
    d=collections.defaultdict(lambda: collections.defaultdict(list))
    for line in open(sys.argv[2]):
        m=re.search(r'TIMING (\w+)((?: \w+=\d+)+)',line)
        if not m: continue
        for k,v in re.findall(r'(\w+)=(\d+)',m.group(2)): d[m.group(1)][k].append(int(v))
    for kind,m in d.items():
        print(kind, {k:(round(st.median(v)),round(st.mean(v))) for k,v in m.items()}, 'n=',len(next(iter(m.values()))))

{"load": load, "report": report}[sys.argv[1]]()
