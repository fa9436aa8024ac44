from talking_head.cli import main

main()
