#!/bin/sh
# Regenerate the golden outputs from the Python programs in py/.
# Run from anywhere: sh tests/golden/regenerate.sh  (needs python3 >= 3.8;
# the files in this directory were made with Python 3.11.7).  It takes about
# 25 seconds because the asyncio programs sleep in real time.
set -eu
cd "$(dirname "$0")"
python3 py/asyncio-hello.py > hello.txt
python3 py/asyncio-done.py >> hello.txt
python3 py/asyncio-event-loop.py > event_loop.txt
python3 py/asyncio-task.py > tasks.txt
python3 py/producer-consumer.py > producer_consumer.txt
python3 py/receiver.py > receiver.txt
python3 py/timers.py > timers.txt
python3 py/concurrent-pool.py 1000 > concurrent_pool.txt
