# Seed 003, with asyncio.run(main()) moved from inside main() to the top
# level: as printed in the seed it never runs (see ../README.md).
# 最簡單的async模型
import asyncio

async def main():
    await asyncio.sleep(1.0)
    print('done')
asyncio.run(main())
