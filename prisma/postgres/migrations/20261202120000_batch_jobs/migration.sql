-- CreateTable
CREATE TABLE "BatchJob" (
    "id" TEXT NOT NULL,
    "modelName" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "status" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "total" INTEGER NOT NULL,
    "processed" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "error" TEXT,
    "notifyUrl" TEXT,
    "notifiedAt" TIMESTAMP(3),
    "idempotencyKey" TEXT,
    "interpretation" JSONB,

    CONSTRAINT "BatchJob_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "BatchRow" (
    "jobId" TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    "input" TEXT NOT NULL,
    "predictionId" TEXT,
    "errorCode" TEXT,
    "errorMessage" TEXT,

    CONSTRAINT "BatchRow_pkey" PRIMARY KEY ("jobId","index")
);

-- CreateIndex
CREATE UNIQUE INDEX "BatchJob_idempotencyKey_key" ON "BatchJob"("idempotencyKey");

-- CreateIndex
CREATE INDEX "BatchJob_status_id_idx" ON "BatchJob"("status", "id");

-- AddForeignKey
ALTER TABLE "BatchRow" ADD CONSTRAINT "BatchRow_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "BatchJob"("id") ON DELETE CASCADE ON UPDATE CASCADE;
