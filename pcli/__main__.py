from .shell import main

raise SystemExit(main())
