import json,glob,statistics,sys
def vals(kind,w,key):
    out=[]
    for f in sorted(glob.glob(f'{kind}-*-{w}.json')):
        d=json.load(open(f)); k=[k for k in d if k.startswith(key)][0]
        out.append((f, d[k][0]))
    return out
for kind,key,field in [('produce','produce','msgs_per_s'),('produce','produce','ack_p99_ms'),('consume','consume','msgs_per_s')]:
    b=vals(kind,'before',key); a=vals(kind,'after',key)
    bv=[x[1][field] for x in b]; av=[x[1][field] for x in a]
    print(f"{kind} {field}: before {[round(v/1e6,2) if v>1000 else v for v in bv]} median {statistics.median(bv):.4g}; after {[round(v/1e6,2) if v>1000 else v for v in av]} median {statistics.median(av):.4g}; after/before {statistics.median(av)/statistics.median(bv):.3f}")
