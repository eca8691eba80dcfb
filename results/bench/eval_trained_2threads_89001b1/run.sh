#!/bin/bash
CK=/tmp/ck/ckpt/paper_cpu
M=$CK/mqmtar.v1/softmax/nape/L2C128H4D32F256/lr0.002/s0/last,$CK/mqmtar.v1/asentmax/nape/L2C128H4D32F256/lr0.002/s0/last
F=$CK/flip_flop.v1/softmax/nape/L2C128H8D16F256/lr0.002/s2/last,$CK/flip_flop.v1/asentmax/nape/L2C128H8D16F256/lr0.002/s2/last
cd $(dirname "$0")
for i in 1 2; do for b in base new; do
  ./lb_$b bench eval --checkpoint $M,$F --lengths 16384,65536 --threads 2 --prefill blocked,plain --new-tokens 4 --json > ${b}_$i.json 2> ${b}_$i.err
done; done
/usr/bin/time -v ./lb_new bench eval --lengths 65536 --threads 1 --prefill blocked --attention softmax,asentmax --new-tokens 4 --json > rss_1thread.json 2> rss_1thread_time.txt
echo finished > done.txt
