def coroutine():
    while True:
        result = (yield) # 获取发送的值
        print("Received:",result)
        
cr = coroutine() # 创建协程
next(cr) # 启动协程
for i in range(10):
    cr.send(i) # 发送值
